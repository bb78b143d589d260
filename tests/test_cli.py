"""End-to-end tests of the ``evseg`` command line, run in-process through ``main([...])``."""

import csv

import numpy as np
import pytest
import tifffile
import torch
from skimage.draw import disk

from evseg.cli import main
from evseg.io import write_tiff
from evseg.measure import MEASUREMENT_COLUMNS, SUMMARY_COLUMNS
from evseg.models.store import create_model, save_model


def _disc_image(shape=(200, 240), radius_px=20, centres=((60, 60), (120, 170))):
    """Dark discs on a bright background (TEM-like polarity) and their labels."""
    labels = np.zeros(shape, np.int32)
    for k, centre in enumerate(centres, start=1):
        rr, cc = disk(centre, radius_px, shape=shape)
        labels[rr, cc] = k
    image = np.where(labels > 0, 60, 200).astype(np.uint8)
    return image, labels


@pytest.fixture
def tiny_model_dir(tmp_path):
    torch.manual_seed(0)
    model = create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.56)
    return save_model(model, tmp_path / "tiny_model")


def _read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_predict_writes_every_output(tmp_path, tiny_model_dir, capsys):
    image, _ = _disc_image()
    write_tiff(tmp_path / "a.tif", image, pixel_size_nm=1.56)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "a.tif"), "--out", str(out), "--model", str(tiny_model_dir), "-q"]) == 0
    for name in ("a_prob.tif", "a_labels.tif", "a_overlay.png", "measurements.csv", "summary.csv"):
        assert (out / name).is_file(), name
    prob = tifffile.imread(out / "a_prob.tif")
    labels = tifffile.imread(out / "a_labels.tif")
    assert prob.dtype == np.float32 and prob.shape == image.shape
    assert labels.dtype == np.uint16 and labels.shape == image.shape
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    columns, _ = _read_csv(out / "measurements.csv")
    assert columns == ["image", *MEASUREMENT_COLUMNS]
    columns, rows = _read_csv(out / "summary.csv")
    assert columns == list(SUMMARY_COLUMNS) and len(rows) == 1
    assert not [p for p in out.iterdir() if ".part" in p.name]  # no temporary files left


def test_predict_classical_measures_discs_in_nm(tmp_path):
    image, labels = _disc_image(radius_px=20)
    write_tiff(tmp_path / "discs.tif", image, pixel_size_nm=2.0)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path), "--out", str(out), "--model", "classical", "-q"]) == 0
    _, rows = _read_csv(out / "measurements.csv")
    assert len(rows) == 2
    for row in rows:
        assert row["image"] == "discs.tif"
        assert float(row["equivalent_diameter_nm"]) == pytest.approx(80.0, rel=0.05)
    _, summary = _read_csv(out / "summary.csv")
    assert int(summary[0]["count"]) == 2


def test_pixel_size_flag_overrides_file(tmp_path):
    image, _ = _disc_image(radius_px=20)
    write_tiff(tmp_path / "discs.tif", image, pixel_size_nm=2.0)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "discs.tif"), "--out", str(out), "--model", "classical",
                 "--pixel-size", "1.0", "-q"]) == 0
    _, rows = _read_csv(out / "measurements.csv")
    assert float(rows[0]["equivalent_diameter_nm"]) == pytest.approx(40.0, rel=0.05)


def test_missing_path_is_a_one_line_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "o"), "--model", "classical"]) == 1
    err = capsys.readouterr().err
    assert "nope.tif" in err and err.strip().count("\n") == 0


def test_folder_without_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--model", "classical"]) == 1
    assert "empty" in capsys.readouterr().err


def test_corrupt_tiff_is_reported_and_others_still_processed(tmp_path, capsys):
    image, _ = _disc_image()
    write_tiff(tmp_path / "good.tif", image, pixel_size_nm=1.56)
    data = (tmp_path / "good.tif").read_bytes()
    (tmp_path / "bad.tif").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path), "--out", str(out), "--model", "classical", "-q"]) == 1
    assert "bad.tif" in capsys.readouterr().err
    assert (out / "good_labels.tif").is_file() and not (out / "bad_labels.tif").exists()
    _, rows = _read_csv(out / "summary.csv")
    assert [r["image"] for r in rows] == ["good.tif"]


def test_3d_stack_to_2d_model(tmp_path, tiny_model_dir, capsys):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 32, 32), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    assert main(["predict", str(tmp_path / "stack.tif"), "--out", str(tmp_path / "o"),
                 "--model", str(tiny_model_dir)]) == 1
    assert "2D model" in capsys.readouterr().err


def test_nan_image_is_rejected(tmp_path, capsys):
    image = np.ones((40, 40), np.float32)
    image[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", image)
    assert main(["predict", str(tmp_path / "nan.tif"), "--out", str(tmp_path / "o"), "--model", "classical",
                 "--pixel-size", "1.56"]) == 1
    assert "NaN" in capsys.readouterr().err


def test_all_zero_image_gives_no_objects(tmp_path):
    tifffile.imwrite(tmp_path / "zero.tif", np.zeros((64, 64), np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "zero.tif"), "--out", str(out), "--model", "classical",
                 "--pixel-size", "1.56", "-q"]) == 0
    _, rows = _read_csv(out / "summary.csv")
    assert rows[0]["count"] == "0"


def test_unknown_pixel_size_warns_and_reports_pixels(tmp_path, capsys):
    image, _ = _disc_image()
    tifffile.imwrite(tmp_path / "nocal.tif", image)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "nocal.tif"), "--out", str(out), "--model", "classical"]) == 0
    assert "no pixel size" in capsys.readouterr().err
    _, rows = _read_csv(out / "measurements.csv")
    assert rows and rows[0]["equivalent_diameter_nm"] == "" and float(rows[0]["equivalent_diameter_px"]) > 30


def test_rgb_image_is_converted_with_a_warning(tmp_path, capsys):
    image, _ = _disc_image()
    rgb = np.stack([image, image // 2, image], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "rgb.tif"), "--out", str(out), "--model", "classical",
                 "--pixel-size", "1.56", "-q"]) == 0
    assert "rgb.tif" in capsys.readouterr().err


def test_train_then_predict_with_the_model_folder(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image, lab = _disc_image(shape=(64, 64), radius_px=8, centres=((20, 20), (44, 40)))
        tifffile.imwrite(images / f"im{i}.tif", (image + rng.normal(0, 5, image.shape)).astype(np.float32))
        tifffile.imwrite(labels / f"im{i}.tif", (lab > 0).astype(np.uint8) * 255)
    model_dir = tmp_path / "model"
    assert main(["train", "--images", str(images), "--labels", str(labels), "--out", str(model_dir),
                 "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--patch-size", "32",
                 "--base-filters", "4", "--depth", "2", "--val-fraction", "0.34", "-q"]) == 0
    for name in ("config.json", "weights.pt", "history.csv", "split.json", "train_config.toml"):
        assert (model_dir / name).is_file(), name
    out = tmp_path / "pred"
    assert main(["predict", str(images), "--out", str(out), "--model", str(model_dir), "-q"]) == 0
    assert (out / "im0_labels.tif").is_file()


def test_train_rejects_mismatched_label_shape(tmp_path, capsys):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(3):
        tifffile.imwrite(images / f"im{i}.tif", np.zeros((32, 32), np.uint8))
        tifffile.imwrite(labels / f"im{i}.tif", np.zeros((30, 32), np.uint8))
    assert main(["train", "--images", str(images), "--labels", str(labels), "--out", str(tmp_path / "m"),
                 "--epochs", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert "shape" in err and "im" in err


def test_split_command(tmp_path):
    mask = np.zeros((80, 120), np.uint8)
    for centre in ((40, 40), (40, 72)):
        rr, cc = disk(centre, 18, shape=mask.shape)
        mask[rr, cc] = 255
    tifffile.imwrite(tmp_path / "m.tif", mask)
    assert main(["split", str(tmp_path / "m.tif"), "--out", str(tmp_path / "o"), "-q"]) == 0
    labels = tifffile.imread(tmp_path / "o" / "m_labels.tif")
    assert len(np.unique(labels)) == 3  # background + the two touching discs


def test_evaluate_command(tmp_path, capsys):
    _, labels = _disc_image()
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    tifffile.imwrite(tmp_path / "gt" / "x.tif", labels.astype(np.uint16))
    tifffile.imwrite(tmp_path / "pred" / "x_labels.tif", labels.astype(np.uint16))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-q"]) == 0
    columns, rows = _read_csv(tmp_path / "pred" / "evaluation.csv")
    assert columns[:4] == ["image", "n_gt", "n_pred", "jaccard"]
    assert rows[-1]["image"] == "ALL" and float(rows[-1]["f1_0.5"]) == 1.0


def test_augment_preview_command(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(2):
        image, labels = _disc_image(shape=(64, 80), radius_px=10, centres=((30, 30), (32, 56)))
        tifffile.imwrite(tmp_path / "img" / f"p{i}.tif", image)
        tifffile.imwrite(tmp_path / "lab" / f"p{i}.tif", labels.astype(np.uint16))
    assert main(["augment-preview", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"),
                 "--out", str(tmp_path / "o"), "--n-per-image", "3", "-q"]) == 0
    grid = np.asarray(Image.open(tmp_path / "o" / "augment_preview.png"))
    assert grid.ndim == 3 and grid.shape[0] > 2 * 64 and grid.shape[1] > 4 * 80
