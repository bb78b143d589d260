"""Tests for 3D prediction: tiled = untiled with a halo, segment_volume, file outputs, 3D post-processing."""

import csv

import numpy as np
import pytest
import tifffile
import torch

from evseg.io import read_image, write_tiff
from evseg.measure import MEASUREMENT_COLUMNS, MEASUREMENT_COLUMNS_3D
from evseg.models.store import create_model
from evseg.predict.pipeline import PredictOptions, probability_to_instances
from evseg.predict.volume import (
    model_spatial_dims,
    predict_volume_file,
    segment_volume,
    volume_probability,
    volume_tile_shape,
    write_measurement_tables,
)


def spheres(shape=(16, 48, 48), centres=((8, 12, 12), (8, 34, 30), (7, 20, 38)), radius=6):
    """A volume with bright balls on a dark background, and its instance labels."""
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for k, (z, y, x) in enumerate(centres, start=1):
        labels[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = k
    return np.where(labels > 0, 200, 40).astype(np.uint16), labels


def tiny_3d_model(pixel_size_nm=None, **kwargs):
    torch.manual_seed(0)
    arch_kwargs = {"base_filters": 4, "depth": 2, "spatial_dims": 3, **kwargs}
    return create_model("frunet", arch_kwargs, pixel_size_nm=pixel_size_nm)


def test_tiled_3d_prediction_equals_untiled_with_halo(rng):
    model = create_model("frunet", {"base_filters": 2, "depth": 1, "spatial_dims": 3,
                                    "anisotropic_pool": [(1, 2, 2)]}, pixel_size_nm=None)
    net = model.network.eval()
    assert net.halo == (7, 10, 10) and net.required_divisor == (1, 2, 2)
    volume = rng.normal(size=(26, 40, 40)).astype(np.float32)
    full = volume_probability(model, volume, tile_shape=volume.shape, overlap=0, precision="fp32")
    # z starts 0, 6; y/x starts 0, 10: on the pooling grid (divisor 1, 2, 2); 2 x 2 x 2 tiles
    tiled = volume_probability(model, volume, tile_shape=(20, 30, 30), overlap=(14, 20, 20), halo=net.halo,
                               precision="fp32", batch_size=4)
    assert tiled.shape == (1, 26, 40, 40)
    np.testing.assert_allclose(tiled, full, atol=1e-4, rtol=0)
    # without the halo the tile borders leak into the result
    leaky = volume_probability(model, volume, tile_shape=(20, 30, 30), overlap=(14, 20, 20), halo=0,
                               precision="fp32", batch_size=4)
    assert np.abs(leaky - full).max() > 1e-3


def test_anisotropic_pooling_keeps_z():
    model = tiny_3d_model(anisotropic_pool=[[1, 2, 2], [2, 2, 2]])
    seen = []
    model.network.downs[0].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))
    with torch.no_grad():
        out = model.network(torch.zeros(1, 1, 8, 32, 32))
    assert seen == [(8, 16, 16)]  # z kept, y and x halved at the first level
    assert out.shape == (1, 1, 8, 32, 32)
    assert model.network.required_divisor == (2, 4, 4)


def test_tile_shape_is_cut_to_the_volume_and_the_pooling_grid():
    model = tiny_3d_model()  # divisor (4, 4, 4)
    assert volume_tile_shape(model, (10, 300, 90), (32, 130, 128)) == (10, 128, 90)
    model.config["tile_shape_3d"] = [8, 64, 64]
    assert volume_tile_shape(model, (20, 300, 300)) == (8, 64, 64)


def test_segment_volume_separates_balls_and_keeps_the_input_grid():
    volume, labels = spheres()
    model = tiny_3d_model(pixel_size_nm=2.0)

    def perfect(batch):  # an oracle network: logits +-10 where the volume is bright / dark
        return torch.where(batch > 0.5, 10.0, -10.0)

    model.network.forward = perfect
    # in-plane 1 nm/px is rescaled to the model's 2 nm/px and back; z (3 nm) is kept
    options = PredictOptions(precision="fp32", min_diameter_nm=5.0)  # balls: 17 nm sphere diameter
    result = segment_volume(model, volume, voxel_size_nm=(3.0, 1.0, 1.0), options=options)
    assert result.labels.shape == volume.shape and result.probability.shape == volume.shape
    assert result.voxel_size_nm == (3.0, 1.0, 1.0) and result.pixel_size_nm == 1.0
    assert result.labels.max() == 3
    for k in range(1, 4):
        predicted = np.bincount(result.labels[labels == k]).argmax()
        overlap = np.count_nonzero((result.labels == predicted) & (labels == k))
        union = np.count_nonzero((result.labels == predicted) | (labels == k))
        assert overlap / union > 0.8


def test_segment_volume_errors():
    volume, _ = spheres()
    with pytest.raises(ValueError, match="needs a \\(Z, Y, X\\) volume"):
        segment_volume(tiny_3d_model(), volume[0], voxel_size_nm=None)
    model_2d = create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=None)
    with pytest.raises(ValueError, match="is a 2D model"):
        segment_volume(model_2d, volume, voxel_size_nm=None)
    with pytest.raises(ValueError, match="'radon' works on 2D images only"):
        segment_volume(tiny_3d_model(), volume, voxel_size_nm=None,
                       options=PredictOptions(split_method="radon", precision="fp32"))
    assert model_spatial_dims(model_2d) == 2 and model_spatial_dims(tiny_3d_model()) == 3
    assert model_spatial_dims("classical") == 2


def test_3d_size_filter_uses_the_voxel_volume_in_nm():
    probability = np.zeros((1, 20, 20, 20), np.float32)
    probability[0, 2:6, 2:6, 2:6] = 1.0  # 64 voxels
    params = {"threshold": 0.5, "split_method": "none", "min_diameter_nm": 30.0, "max_hole_area_nm2": 0.0}
    # 64 voxels of 2 x 4 x 4 nm = 2048 nm^3: sphere diameter cbrt(6 * 2048 / pi) = 15.8 nm < 30 nm
    assert probability_to_instances(probability, params=params, pixel_size_nm=(2.0, 4.0, 4.0)).max() == 0
    # of 10 x 8 x 8 nm = 40960 nm^3: diameter 42.8 nm >= 30 nm
    assert probability_to_instances(probability, params=params, pixel_size_nm=(10.0, 8.0, 8.0)).max() == 1


def test_predict_volume_file_writes_calibrated_outputs_and_3d_table(tmp_path):
    volume, labels = spheres()
    path = write_tiff(tmp_path / "vol.tif", volume, voxel_size_nm=(3.0, 1.0, 1.0))
    model = tiny_3d_model(pixel_size_nm=1.0)
    model.network.forward = lambda batch: torch.where(batch > 0.5, 10.0, -10.0)
    out = tmp_path / "out"
    out.mkdir()
    options = PredictOptions(precision="fp32", min_diameter_nm=5.0)
    summary, table, thumbnail, pixel = predict_volume_file(model, read_image(path), out, options=options)
    assert thumbnail is None and pixel == 1.0
    written = read_image(out / "vol_labels.tif")
    assert written.data.shape == volume.shape and written.voxel_size_nm == pytest.approx((3.0, 1.0, 1.0))
    assert tifffile.imread(out / "vol_prob.tif").shape == volume.shape
    assert (out / "vol_overlay.png").is_file()
    assert summary["count"] == 3 and len(table["label"]) == 3
    assert list(table) == ["image", *MEASUREMENT_COLUMNS_3D]
    # volumes in nm^3 = voxel count x 3 nm^3
    np.testing.assert_allclose(table["volume_nm3"], table["volume_px"] * 3.0)
    with pytest.raises(ValueError, match="2D image .* given to a 3D model"):
        predict_volume_file(model, read_image(write_tiff(tmp_path / "flat.tif", volume[0])), out)

    paths = write_measurement_tables(out, [table, {"image": np.array(["a.tif"]), **{
        c: np.array([1.0]) for c in MEASUREMENT_COLUMNS}}])
    assert [p.name for p in paths] == ["measurements.csv", "measurements_3d.csv"]
    with open(out / "measurements_3d.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and rows[0]["image"] == "vol.tif" and "sphericity" in rows[0]
