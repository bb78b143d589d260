"""Tests for pairing image/label files by stem and splitting by image."""

import numpy as np
import pytest
import tifffile

from evseg.data.pairs import pair_by_stem, split_indices


def _touch(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        tifffile.imwrite(folder / name, np.zeros((4, 4), np.uint8))


def test_pair_by_stem_accepts_labels_suffix(tmp_path):
    _touch(tmp_path / "img", ["a.tif", "b.tif", "c.tif"])
    _touch(tmp_path / "lab", ["a.tif", "b_labels.tif", "c_mask.tif"])
    pairs = pair_by_stem(tmp_path / "img", tmp_path / "lab")
    assert [p.stem for p in pairs] == ["a", "b", "c"]
    assert pairs[1].label_path.name == "b_labels.tif"


def test_unmatched_stems_are_listed(tmp_path):
    _touch(tmp_path / "img", ["a.tif", "b.tif"])
    _touch(tmp_path / "lab", ["a.tif", "z.tif"])
    with pytest.raises(ValueError, match=r"images without a label file.*b.*label files without an image.*z"):
        pair_by_stem(tmp_path / "img", tmp_path / "lab")


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "img").mkdir()
    _touch(tmp_path / "lab", ["a.tif"])
    with pytest.raises(ValueError, match="No image files"):
        pair_by_stem(tmp_path / "img", tmp_path / "lab")
    with pytest.raises(FileNotFoundError, match="nope"):
        pair_by_stem(tmp_path / "nope", tmp_path / "lab")


@pytest.mark.parametrize("n", [3, 10, 57])
def test_split_is_disjoint_complete_and_seeded(n):
    train, val, test = split_indices(n, val_fraction=0.2, test_fraction=0.2, rng=3)
    assert sorted(train + val + test) == list(range(n))
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert len(val) >= 1 and len(test) >= 1 and len(train) >= 1
    assert (train, val, test) == split_indices(n, val_fraction=0.2, test_fraction=0.2, rng=3)


def test_split_too_few_images():
    with pytest.raises(ValueError, match="Too few images"):
        split_indices(2, val_fraction=0.5, test_fraction=0.5)
