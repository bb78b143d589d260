"""Tests of ``evseg compare``: split, training alike, scoring on the test images, report files."""

import csv
import json
import re

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image as PILImage
from skimage.draw import disk

from evseg.cli import main
from evseg.evaluate.compare import (
    COMPARISON_COLUMNS,
    GROUND_TRUTH,
    PER_IMAGE_COLUMNS,
    compare_methods,
    resolve_methods,
)
from evseg.evaluate.metrics import match_instances, seg_score
from evseg.evaluate.report import TABLE_COLUMNS, comparison_table_markdown
from evseg.evaluate.scores import evaluate_pair
from evseg.io import write_tiff
from evseg.models.store import create_model, load_model, save_model
from evseg.predict.pipeline import segment_image
from evseg.train.config import TrainConfig

TINY = {"arch_kwargs": {"base_filters": 4, "depth": 2}, "epochs": 1, "steps_per_epoch": 1, "batch_size": 1,
        "patch_size": 32, "augment": "none", "pixel_size_nm": None, "precision": "fp32"}


def _disc_pair(rng, shape=(64, 64)):
    """Dark noisy discs (radius 6-9 px) on a bright background, and their instance labels."""
    labels = np.zeros(shape, np.int32)
    centres = [(16, 16), (16, 46), (46, 30)]
    for k, centre in enumerate(centres[: rng.integers(2, 4)], start=1):
        rr, cc = disk(tuple(int(c) for c in centre + rng.integers(-3, 4, 2)), int(rng.integers(6, 10)), shape=shape)
        labels[rr, cc] = k
    image = np.where(labels > 0, 70.0, 190.0) + rng.normal(0, 4, shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _write_dataset(root, n, *, pixel_size_nm):
    """``n`` pairs: TIFF images with ``pixel_size_nm`` (or PNG without one) and uint16 TIFF labels."""
    rng = np.random.default_rng(7)
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(n):
        image, lab = _disc_pair(rng)
        if pixel_size_nm is None:
            PILImage.fromarray(image).save(images / f"im{i:02d}.png")
        else:
            write_tiff(images / f"im{i:02d}.tif", image, pixel_size_nm=pixel_size_nm)
        tifffile.imwrite(labels / f"im{i:02d}.tif", lab.astype(np.uint16))
    return images, labels


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _markdown_table(text):
    """Header cells and data rows (cells, bold marks removed) of the first Markdown table."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in lines]
    table = []
    for row in cells[2:]:
        if row == cells[0] or len(row) != len(cells[0]):
            break
        table.append(row)
    return cells[0], table


def test_cli_compare_end_to_end(tmp_path, capsys):
    """frunet + classical on PNGs without pixel size: every report file, exact columns, disjoint split."""
    images, labels = _write_dataset(tmp_path, 6, pixel_size_nm=None)
    config = tmp_path / "tiny.toml"
    config.write_text('arch_kwargs = { base_filters = 4, depth = 2 }\nsteps_per_epoch = 1\nbatch_size = 1\n'
                      'patch_size = 32\naugment = "flips"\nprecision = "fp32"\n')
    out = tmp_path / "report"
    status = main(["compare", "--images", str(images), "--labels", str(labels), "--models", "frunet", "classical",
                   "--out", str(out), "--epochs", "1", "--seed", "3", "--config", str(config), "-q"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    for name in ("comparison.md", "comparison.html", "comparison.csv", "per_image.csv", "size_histograms.png",
                 "split.json", "models/frunet/config.json", "models/frunet/weights.pt", "models/frunet/split.json"):
        assert (out / name).is_file(), name

    split = json.loads((out / "split.json").read_text())
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert [len(s) for s in sets] == [4, 1, 1]  # 6 images: 0.6 / 0.2 / rest
    assert set.union(*sets) == {f"im{i:02d}" for i in range(6)}
    assert sum(len(s) for s in sets) == 6  # disjoint
    assert json.loads((out / "models/frunet/split.json").read_text()) == split
    model_config = json.loads((out / "models/frunet/config.json").read_text())
    assert model_config["pixel_size_nm"] is None  # no pixel size anywhere: the model works in pixels
    assert model_config["arch"] == "frunet" and model_config["train"]["seed"] == 3
    assert model_config["train"]["epochs"] == 1 and model_config["split"] == split

    header, rows = _markdown_table((out / "comparison.md").read_text(encoding="utf-8"))
    assert header == [h for _, h in TABLE_COLUMNS]
    assert header == ["Method", "Jaccard", "SEG", "DET", "δd", "δr", "F1@0.5", "AP@0.5", "s/image", "n_pred / n_gt"]
    assert [r[0] for r in rows] == ["frunet", "classical"]
    html = (out / "comparison.html").read_text(encoding="utf-8")
    assert html.count("<tr><td>") == 2 + 1  # two method rows, one training row
    columns, csv_rows = _read_csv(out / "comparison.csv")
    assert columns == list(COMPARISON_COLUMNS) and [r["method"] for r in csv_rows] == ["frunet", "classical"]
    for md_row, csv_row in zip(rows, csv_rows, strict=True):
        assert md_row[1] == f"{float(csv_row['jaccard']):.3f}"
        assert md_row[-1] == f"{csv_row['n_pred']} / {csv_row['n_gt']}"
    columns, per_image = _read_csv(out / "per_image.csv")
    assert columns == list(PER_IMAGE_COLUMNS)
    assert [(r["method"], r["image"]) for r in per_image] == [(m, split["test"][0]) for m in ("frunet", "classical")]
    assert (out / "examples" / f"{split['test'][0]}.png").is_file()
    # the classical baseline needs a pixel size: one grouped warning, not one per image
    assert len(re.findall(r"classical: 1 of 1 test image\(s\): no pixel size", captured.err)) == 1
    assert "| frunet |" in captured.out


def test_unknown_method_fails_before_training(tmp_path, capsys):
    images, labels = _write_dataset(tmp_path, 5, pixel_size_nm=None)
    out = tmp_path / "report"
    status = main(["compare", "--images", str(images), "--labels", str(labels), "--models", "frunnet", "classical",
                   "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Unknown method 'frunnet'" in err and "Did you mean 'frunet'?" in err
    for option in ("'frunet'", "'unet'", "'classical'", "'sev'", "model folder"):
        assert option in err
    assert not out.exists()


def test_resolve_methods_kinds_and_errors(tmp_path):
    folder = save_model(create_model("unet", {"base_filters": 4, "depth": 2}, pixel_size_nm=None), tmp_path / "mine")
    specs = resolve_methods(["unet", "classical", str(folder), "sev"])
    assert [(s.name, s.kind) for s in specs] == [("unet", "learned"), ("classical", "classical"), ("mine", "model"),
                                                 ("sev", "model")]
    with pytest.raises(ValueError, match="twice: classical"):
        resolve_methods(["classical", "classical"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an evseg model folder"):
        resolve_methods([str(tmp_path / "empty")])
    with pytest.raises(ValueError, match="non-empty"):
        resolve_methods([])


@pytest.mark.parametrize(("train_fraction", "val_fraction"), [(0.8, 0.2), (0.0, 0.2), (1.0, 0.0)])
def test_fractions_must_leave_a_test_set(tmp_path, train_fraction, val_fraction):
    images, labels = _write_dataset(tmp_path, 5, pixel_size_nm=None)
    with pytest.raises(ValueError, match="train_fraction"):
        compare_methods(images, labels, ["classical"], out_dir=tmp_path / "r",
                        config=TrainConfig(**TINY, val_fraction=val_fraction), train_fraction=train_fraction)


def test_rows_equal_an_independent_computation(tmp_path):
    """classical + an untrained model folder on calibrated TIFFs, 2 test images pooled."""
    images, labels = _write_dataset(tmp_path, 10, pixel_size_nm=4.0)
    torch.manual_seed(0)
    folder = save_model(create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=None),
                        tmp_path / "untrained")
    result = compare_methods(images, labels, ["classical", str(folder)], out_dir=tmp_path / "report",
                             config=TrainConfig(**TINY, seed=1), train_fraction=0.6, progress=False)
    test = result.split["test"]
    assert len(test) == 2 and not set(test) & (set(result.split["train"]) | set(result.split["val"]))
    assert not (tmp_path / "report" / "models").exists()  # nothing was trained
    assert [r.name for r in result.rows] == ["classical", "untrained"]

    gts = [tifffile.imread(labels / f"{s}.tif").astype(np.int32) for s in test]
    for row in result.rows:
        segmenter = "classical" if row.name == "classical" else load_model(folder)
        preds = [segment_image(segmenter, tifffile.imread(images / f"{s}.tif"), pixel_size_nm=4.0).labels
                 for s in test]
        per_image = [r for r in result.per_image if r["method"] == row.name]
        for stem, gt, pred, got in zip(test, gts, preds, per_image, strict=True):
            assert got["image"] == stem
            expected = evaluate_pair(gt, pred)
            assert {k: got[k] for k in expected} == pytest.approx(expected, nan_ok=True)
        pooled = row.as_dict()
        inter = sum(np.count_nonzero((g > 0) & (p > 0)) for g, p in zip(gts, preds, strict=True))
        union = sum(np.count_nonzero((g > 0) | (p > 0)) for g, p in zip(gts, preds, strict=True))
        matches = [match_instances(g, p, iou_threshold=0.5) for g, p in zip(gts, preds, strict=True)]
        tp, fp, fn = (sum(getattr(m, a) for m in matches) for a in ("tp", "fp", "fn"))
        n_gt = [int(g.max()) for g in gts]
        assert pooled["n_gt"] == sum(n_gt) and pooled["n_pred"] == sum(int(p.max()) for p in preds)
        assert pooled["jaccard"] == pytest.approx(inter / union)
        assert pooled["f1_0.5"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
        seg = sum(seg_score(g, p) * n for g, p, n in zip(gts, preds, n_gt, strict=True)) / sum(n_gt)
        assert pooled["seg"] == pytest.approx(seg)
    classical = result.rows[0].as_dict()
    assert classical["jaccard"] > 0.7 and classical["f1_0.5"] > 0.7  # crisp discs: the baseline finds them

    # sizes: calibrated images give diameters in nm, 2 sqrt(area / pi) * 4 nm per object
    assert result.diameter_unit == "nm"
    areas = np.concatenate([np.bincount(g.ravel())[1:] for g in gts])
    assert np.sort(result.diameters[GROUND_TRUTH]) == pytest.approx(np.sort(2 * np.sqrt(areas / np.pi) * 4.0))
    assert all(result.diameters[r.name].size == result.rows[i].as_dict()["n_pred"] for i, r in enumerate(result.rows))
    for name in ("comparison.md", "comparison.html", "size_histograms.png", f"examples/{test[0]}.png"):
        assert (tmp_path / "report" / name).is_file()
    example = np.asarray(PILImage.open(tmp_path / "report" / "examples" / f"{test[0]}.png"))
    assert example.shape[1] == 4 * 64 + 3 * 6  # image | GT | 2 methods, 6 px gaps


def test_markdown_table_marks_the_best_values():
    base = {"kind": "x", "n_images": 1, "dice": 0.0, "det": 0.5, "delta_r": float("nan"), "ap_0.5": 0.1,
            "precision_0.5": 0.0, "recall_0.5": 0.0, "train_minutes": float("nan"), "epochs_run": None,
            "best_epoch": None, "stop_reason": None}
    rows = [{**base, "method": "a", "n_gt": 5, "n_pred": 4, "jaccard": 0.8, "seg": 0.7, "delta_d": 0.1,
             "f1_0.5": 0.9, "seconds_per_image": 2.0},
            {**base, "method": "b", "n_gt": 5, "n_pred": 6, "jaccard": 0.6, "seg": 0.75, "delta_d": 0.05,
             "f1_0.5": 0.5, "seconds_per_image": 0.5}]
    lines = comparison_table_markdown(rows).splitlines()
    assert len(lines) == 4
    a = [c.strip() for c in lines[2].strip("|").split("|")]
    b = [c.strip() for c in lines[3].strip("|").split("|")]
    assert a == ["a", "**0.800**", "0.700", "**0.500**", "0.100", "n/a", "**0.900**", "**0.100**", "2", "4 / 5"]
    assert b == ["b", "0.600", "**0.750**", "**0.500**", "**0.050**", "n/a", "0.500", "**0.100**", "**0.5**", "6 / 5"]
