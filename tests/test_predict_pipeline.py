"""Tests for the image -> probability -> labels pipeline: rescaling, grids, options, tiling."""

import numpy as np
import pytest
import torch
from skimage.draw import disk

from evseg.models.store import create_model
from evseg.predict.pipeline import PredictOptions, segment_image, working_grid


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.56)


def test_output_is_on_the_input_grid_after_rescaling(tiny_model, rng):
    image = rng.random((90, 130)).astype(np.float32)
    result = segment_image(tiny_model, image, pixel_size_nm=0.78)
    assert result.probability.shape == image.shape and result.labels.shape == image.shape
    assert result.labels.dtype == np.int32
    assert working_grid(tiny_model, 0.78) == (0.78, 0.5)


def test_unknown_pixel_size_warns_and_assumes_the_models(tiny_model):
    with pytest.warns(UserWarning, match="no pixel size"):
        grid = working_grid(tiny_model, None, "x.tif")
    assert grid == (1.56, 1.0)


def test_pixel_model_never_rescales():
    model = create_model("unet", {"base_filters": 4, "depth": 2}, pixel_size_nm=None)
    assert working_grid(model, 0.5) == (None, 1.0)
    assert working_grid(model, None) == (None, 1.0)


def test_tile_size_does_not_change_the_probability(tiny_model, rng):
    """Tiled prediction with blended halos equals one whole-image pass (within 1e-4).

    Sizes are multiples of the network's down-sampling factor (4), so that every tile sees the same
    pooling grid as the whole image.
    """
    image = rng.random((148, 172)).astype(np.float32)
    halo = max(tiny_model.network.halo)
    whole = segment_image(tiny_model, image, pixel_size_nm=1.56,
                          options=PredictOptions(tile_size=256, overlap=2 * halo, precision="fp32"))
    tiled = segment_image(tiny_model, image, pixel_size_nm=1.56,
                          options=PredictOptions(tile_size=64, overlap=2 * halo + 4, precision="fp32"))
    np.testing.assert_allclose(tiled.probability, whole.probability, atol=1e-4)


def test_classical_finds_drawn_discs():
    labels = np.zeros((120, 160), np.int32)
    for k, centre in enumerate(((40, 40), (70, 110)), start=1):
        rr, cc = disk(centre, 15, shape=labels.shape)
        labels[rr, cc] = k
    image = np.where(labels > 0, 0.2, 0.8).astype(np.float32)
    result = segment_image("classical", image, pixel_size_nm=2.0)
    assert result.labels.max() == 2
    assert result.pixel_size_nm == 2.0


@pytest.mark.parametrize(("field", "value"), [("tile_size", 8), ("overlap", 2000), ("threshold", 1.5),
                                               ("precision", "fp16")])
def test_bad_options(field, value):
    with pytest.raises(ValueError, match=field if field != "precision" else "precision"):
        PredictOptions(**{field: value})
