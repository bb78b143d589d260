"""Block-wise segmentation of huge images: same objects as one whole-image pass, none cut or doubled."""

import numpy as np
import pytest
import torch
from skimage.draw import disk

from evseg.models.store import create_model
from evseg.predict.blocks import block_grid, keep_core_objects
from evseg.predict.pipeline import PredictOptions, segment_image


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("unet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.0)


def _discs(shape, rng, n=60):
    """A bright image with dark discs (radius 6-20 px) at random places, some touching block borders."""
    labels = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        centre = (int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1])))
        rr, cc = disk(centre, int(rng.integers(6, 21)), shape=shape)
        labels[rr, cc] = k
    return np.where(labels > 0, 0.2, 0.9).astype(np.float32), labels


def _intensity_network(model, normalized, *, options):
    """A stand-in for the network: foreground probability = darkness (local, deterministic)."""
    return np.clip(1.0 - normalized, 0.0, 1.0)[None].astype(np.float32)


def test_block_grid_tiles_the_axis():
    grid = block_grid(1000, 256, 40)
    cores = np.zeros(1000, int)
    for core, padded in grid:
        cores[core] += 1
        assert padded.start == max(core.start - 40, 0) and padded.stop == min(core.stop + 40, 1000)
    assert np.all(cores == 1)
    with pytest.raises(ValueError, match="block"):
        block_grid(10, 0, 1)


def test_keep_core_objects_uses_the_box_centre():
    labels = np.zeros((20, 20), np.int32)
    labels[2:6, 2:6] = 1  # centre (3.5, 3.5): in the core
    labels[8:16, 12:20] = 2  # centre (11.5, 15.5): right of the core
    kept = keep_core_objects(labels, (slice(0, 10), slice(0, 10)))
    assert [label for _, label in kept] == [1]


def test_blocks_give_the_objects_of_one_whole_pass(model, rng, monkeypatch):
    monkeypatch.setattr("evseg.predict.pipeline.network_probability", _intensity_network)
    image, _ = _discs((700, 520), rng)
    whole = segment_image(model, image, pixel_size_nm=1.0,
                          options=PredictOptions(split_method="none"))
    blocks = segment_image(model, image, pixel_size_nm=1.0,
                           options=PredictOptions(split_method="none", block_size=256, block_margin_nm=64,
                                                  block_min_image_px=0))
    assert blocks.probability.dtype == np.float16 and blocks.labels.dtype == np.int32
    np.testing.assert_allclose(blocks.probability, whole.probability, atol=1e-3)
    # the same partition into objects: every whole-pass object is exactly one block-pass object
    assert len(np.unique(blocks.labels)) == len(np.unique(whole.labels))
    pairs = {(int(a), int(b)) for a, b in zip(whole.labels.ravel(), blocks.labels.ravel(), strict=True)}
    assert len(pairs) == len(np.unique(whole.labels))
