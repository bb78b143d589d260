"""Tests for 3D training: anisotropic pooling rule, 3D config, loading volumes, 3D loop, CLI end to end."""

import csv
import json

import numpy as np
import pytest
import torch

from evseg.cli import main
from evseg.data.normalize import percentile_normalize
from evseg.data.pairs import FilePair
from evseg.io import read_image, write_tiff
from evseg.models.store import create_model, load_model
from evseg.train import loop
from evseg.train.config import TrainConfig, config_to_toml, derive_anisotropic_pool, read_config_toml
from evseg.train.data import TrainingImage, load_training_images


def spheres(shape=(16, 48, 48), centres=((8, 12, 12), (8, 34, 30), (7, 22, 38)), radius=6, seed=0, noise_sd=20):
    """A noisy volume with bright balls, and its instance labels."""
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for k, (z, y, x) in enumerate(centres, start=1):
        labels[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = k
    noise = np.random.default_rng(seed).normal(0, noise_sd, shape)
    return np.clip(np.where(labels > 0, 180, 60) + noise, 0, 255).astype(np.uint8), labels


@pytest.mark.parametrize(("voxel", "depth", "expected"), [
    # ssTEM 50 x 4.6 nm: y/x catch up with z after 3 in-plane poolings (36.8 nm <= 2 x 50 nm)
    ((50.0, 4.6, 4.6), 4, [[1, 2, 2], [1, 2, 2], [1, 2, 2], [2, 2, 2]]),
    ((40.0, 10.0, 10.0), 2, [[1, 2, 2], [2, 2, 2]]),  # 40 > 2 x 10, then 40 <= 2 x 20
    ((20.0, 10.0, 10.0), 3, None),  # exactly 2x: pooled everywhere (the network's default)
    ((1.0, 5.0, 5.0), 2, [[2, 1, 1], [2, 1, 1]]),  # fine z: y/x wait for z (2 nm, then 4 nm)
    (None, 3, None),  # unknown voxel size: isotropic
])
def test_anisotropic_pool_rule(voxel, depth, expected):
    assert derive_anisotropic_pool(voxel, depth=depth) == expected


def test_3d_config_defaults_errors_and_toml_round_trip(tmp_path):
    config = TrainConfig(spatial_dims=3, anisotropic_pool=[(1, 2, 2), 2], arch_kwargs={"depth": 2})
    assert config.anisotropic_pool == [[1, 2, 2], [2, 2, 2]]
    assert config.resolved_split_method == "watershed" and TrainConfig().resolved_split_method == "radon"
    assert config.network_kwargs() == {"depth": 2, "spatial_dims": 3, "anisotropic_pool": [[1, 2, 2], [2, 2, 2]]}
    auto = TrainConfig(spatial_dims=3, arch_kwargs={"depth": 2})
    assert auto.network_kwargs((40.0, 10.0, 10.0))["anisotropic_pool"] == [[1, 2, 2], [2, 2, 2]]
    assert "anisotropic_pool" not in auto.network_kwargs(None)
    assert "spatial_dims" not in TrainConfig().network_kwargs((40.0, 10.0, 10.0))
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(config))
    assert read_config_toml(path) == config
    with pytest.raises(ValueError, match="'radon' works on 2D images only"):
        TrainConfig(spatial_dims=3, split_method="radon")
    with pytest.raises(ValueError, match="spatial_dims"):
        TrainConfig(spatial_dims=4)
    with pytest.raises(ValueError, match="anisotropic_pool"):
        TrainConfig(spatial_dims=3, anisotropic_pool="sometimes")


def test_load_volumes_rescales_in_plane_only(tmp_path):
    volume, labels = spheres()
    write_tiff(tmp_path / "v.tif", volume, voxel_size_nm=(40.0, 10.0, 10.0))
    write_tiff(tmp_path / "v_labels.tif", labels.astype(np.uint16), pixel_size_nm=10.0)
    pair = FilePair("v", tmp_path / "v.tif", tmp_path / "v_labels.tif")
    norm = {"method": "percentile", "low": 1.0, "high": 99.8}
    (item,) = load_training_images([pair], model_pixel_size_nm=5.0, normalization=norm, spatial_dims=3)
    assert item.image.shape == (16, 96, 96) and item.labels.shape == (16, 96, 96)  # z kept, y/x doubled
    assert item.voxel_size_nm == (40.0, 5.0, 5.0)
    assert set(np.unique(item.labels)) == {0, 1, 2, 3}
    (raw,) = load_training_images([pair], model_pixel_size_nm=None, normalization=norm, spatial_dims=3)
    assert raw.image.shape == (16, 48, 48) and raw.voxel_size_nm == pytest.approx((40.0, 10.0, 10.0))
    with pytest.raises(ValueError, match="--spatial-dims 3"):
        load_training_images([pair], model_pixel_size_nm=None, normalization=norm, spatial_dims=2)
    write_tiff(tmp_path / "flat.tif", volume[0], pixel_size_nm=10.0)
    write_tiff(tmp_path / "flat_labels.tif", labels[0].astype(np.uint16), pixel_size_nm=10.0)
    flat = FilePair("flat", tmp_path / "flat.tif", tmp_path / "flat_labels.tif")
    with pytest.raises(ValueError, match="3D volume is needed"):
        load_training_images([flat], model_pixel_size_nm=None, normalization=norm, spatial_dims=3)


def _training_volumes(n, noise_sd=20):
    out = []
    for i in range(n):
        volume, labels = spheres(seed=i, noise_sd=noise_sd)
        out.append(TrainingImage(f"v{i}", percentile_normalize(volume), labels, (40.0, 10.0, 10.0)))
    return out


def test_train_model_3d_runs_validates_and_saves(tmp_path):
    config = TrainConfig(spatial_dims=3, arch_kwargs={"base_filters": 4, "depth": 2}, epochs=1, steps_per_epoch=2,
                         patch_size=32, batch_size=1, precision="fp32", pixel_size_nm=10.0, augment="full",
                         min_diameter_nm=0.0)
    data = _training_volumes(2)
    assert loop.patch_shape(config, data) == (16, 32, 32)  # z capped at the volume depth
    assert loop.patch_shape(config.replace(patch_size_z=8), data) == (8, 32, 32)
    torch.manual_seed(0)
    model = create_model("frunet", config.network_kwargs((40.0, 10.0, 10.0)), pixel_size_nm=10.0)
    result = loop.train_model(model, data[:1], data[1:], config, tmp_path, progress=False)
    assert result.epochs_run == 1 and set(result.best_metrics) == {"jaccard", "f1", "n_pred"}
    assert 0.0 <= result.best_metrics["jaccard"] <= 1.0
    saved = load_model(tmp_path)
    assert saved.network.spatial_dims == 3 and saved.network.required_divisor == (2, 4, 4)
    assert saved.postprocessing["split_method"] == "watershed"
    assert saved.config["voxel_size_nm"] == [40.0, 10.0, 10.0]
    # a 2D model cannot be trained on volumes
    flat_model = create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=10.0)
    with pytest.raises(ValueError, match="network is 2D"):
        loop.train_model(flat_model, data[:1], [], config, tmp_path / "x", progress=False)


def test_validate_scores_a_perfect_3d_model():
    data = _training_volumes(1, noise_sd=0)
    model = create_model("frunet", {"base_filters": 4, "depth": 2, "spatial_dims": 3}, pixel_size_nm=None,
                         postprocessing={"split_method": "radon", "min_diameter_px": 0.0})  # radon: 3D uses watershed
    model.network.forward = lambda batch: torch.where(batch > 0.5, 10.0, -10.0)
    metrics = loop.validate(model, data)
    assert metrics["f1"] == 1.0 and metrics["n_pred"] == 3 and metrics["jaccard"] > 0.95


def test_cli_trains_and_predicts_a_3d_model(tmp_path, capsys):
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    for i in range(3):
        volume, labels = spheres(seed=i)
        write_tiff(tmp_path / "images" / f"v{i}.tif", volume, voxel_size_nm=(40.0, 10.0, 10.0))
        write_tiff(tmp_path / "labels" / f"v{i}.tif", labels.astype(np.uint16), pixel_size_nm=10.0)
    model_dir = tmp_path / "model"
    code = main(["train", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                 "--out", str(model_dir), "--spatial-dims", "3", "--model-pixel-size", "10", "--depth", "2",
                 "--base-filters", "4", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1",
                 "--patch-size", "32", "--patch-size-z", "8", "--val-fraction", "0.34", "--precision", "fp32",
                 "-q"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((model_dir / "config.json").read_text())
    assert config["arch_kwargs"]["spatial_dims"] == 3
    assert config["arch_kwargs"]["anisotropic_pool"] == [[1, 2, 2], [2, 2, 2]]  # from the 40 x 10 x 10 nm voxels
    assert config["postprocessing"]["split_method"] == "watershed"
    assert config["train"]["patch_size_z"] == 8

    explicit = main(["train", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                     "--out", str(tmp_path / "m2"), "--spatial-dims", "3", "--anisotropic-pool", "1,2,2", "1,2,2",
                     "--model-pixel-size", "none", "--depth", "2", "--base-filters", "4", "--epochs", "1",
                     "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "32", "-q"])
    assert explicit == 0
    assert load_model(tmp_path / "m2").network.required_divisor == (1, 4, 4)

    # the wiring of `evseg predict` for volumes (a 1-step model finds nothing above 0.99: an empty 3D table)
    out = tmp_path / "pred"
    code = main(["predict", str(tmp_path / "images" / "v0.tif"), "--out", str(out), "--model", str(model_dir),
                 "--precision", "fp32", "--threshold", "0.99", "-q"])
    assert code == 0, capsys.readouterr().err
    labels = read_image(out / "v0_labels.tif")
    assert labels.data.shape == (16, 48, 48) and labels.voxel_size_nm == pytest.approx((40.0, 10.0, 10.0))
    with open(out / "measurements_3d.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:3] == ["image", "label", "centroid_z_px"]

    # a 2D image given to the 3D model is a clear per-image error
    write_tiff(tmp_path / "flat.tif", spheres()[0][8], pixel_size_nm=10.0)
    assert main(["predict", str(tmp_path / "flat.tif"), "--out", str(tmp_path / "p2"), "--model",
                 str(model_dir), "-q"]) == 1
    assert "given to a 3D model" in capsys.readouterr().err


def test_non_finite_loss_stops_training_with_a_clear_error(tmp_path, monkeypatch):
    config = TrainConfig(spatial_dims=3, arch_kwargs={"base_filters": 2, "depth": 1}, epochs=2, steps_per_epoch=1,
                         patch_size=16, patch_size_z=4, batch_size=1, precision="fp32", pixel_size_nm=None,
                         augment="none")
    model = create_model("frunet", config.network_kwargs(), pixel_size_nm=None)
    monkeypatch.setattr(loop, "_loss", lambda *args: torch.tensor(float("nan")))
    with pytest.raises(RuntimeError, match="training diverged.*precision 'fp32'"):
        loop.train_model(model, _training_volumes(1), [], config, tmp_path, progress=False)
