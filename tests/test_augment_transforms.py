"""Tests for evseg.augment: alignment of image and labels under every geometric op, determinism,
intensity ops on the image only, 3D, DataLoader workers, config handling and the preview grid."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import ellipse
from skimage.segmentation import find_boundaries

from evseg.augment import AugmentConfig, augment_preview, build_augmentation
from evseg.augment.transforms import _resample, _upsample_displacement

GEOMETRIC = {
    "flip": {"flip_prob": 1.0},
    "rot90": {"rot90_prob": 1.0},
    "rotate": {"rotate_prob": 1.0, "rotate_deg": 30.0},
    "zoom": {"zoom_prob": 1.0},
    "shear": {"shear_prob": 1.0, "shear_max": 0.2},
    "translate": {"translate_prob": 1.0},
    "elastic": {"elastic_prob": 1.0},
}
GEOMETRIC["all"] = {k: v for op in GEOMETRIC.values() for k, v in op.items()}
INTENSITY = {f"{op}_prob": 1.0 for op in ("invert", "gamma", "contrast", "brightness", "blur", "poisson", "noise")}


def _labels_2d(shape=(96, 96)) -> np.ndarray:
    """Six ellipses with ids 1..6 (two touching), asymmetric so every flip/rotation changes them."""
    lab = np.zeros(shape, np.int32)
    shapes = [(18, 20, 9, 13), (20, 62, 12, 8), (50, 30, 11, 11), (60, 72, 15, 9), (80, 18, 7, 12), (84, 50, 8, 8)]
    for k, (r, c, ry, rx) in enumerate(shapes, start=1):
        rr, cc = ellipse(r, c, ry, rx, shape=shape, rotation=0.3 * k)
        lab[rr, cc] = k
    return lab


def _labels_3d(shape=(32, 56, 56)) -> np.ndarray:
    z, y, x = np.indices(shape)
    lab = np.zeros(shape, np.int32)
    for k, (cz, cy, cx, r) in enumerate([(10, 14, 16, 10), (18, 36, 18, 11), (14, 18, 40, 9), (20, 40, 40, 10)], 1):
        lab[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r] = k
    return lab


def _as_image(lab: np.ndarray) -> np.ndarray:
    """Channel 0: the foreground mask, channel 1: the ids, both as float32."""
    return np.stack([lab > 0, lab]).astype(np.float32)


def _check_alignment(out: dict, lab: np.ndarray, *, min_iou: float = 0.95) -> None:
    """The augmented float copy of the labels agrees with the augmented labels.

    Thresholding (bi/tri)linear values at 0.5 and nearest-neighbour sampling disagree on some
    surface pixels (IoU >= ~0.96 in 2D, ~0.93 in 3D, where fractional shifts near 0.5 on three
    axes are the worst case); a one-pixel misalignment gives IoU ~0.88 (2D) and ~0.86 (3D).
    """
    mask, ids, out_lab = out["image"][0], out["image"][1], out["label"][0]
    assert out_lab.dtype == lab.dtype and out_lab.shape == lab.shape
    assert set(np.unique(out_lab)) <= set(np.unique(lab))  # nearest neighbour: no new ids
    fg_img, fg_lab = mask > 0.5, out_lab > 0
    iou = (fg_img & fg_lab).sum() / (fg_img | fg_lab).sum()
    assert iou > min_iou
    # where bilinear interpolation sees a single id (value is an integer), it must be the label's id
    pure = np.abs(ids - np.rint(ids)) < 1e-3
    assert (np.rint(ids[pure]) == out_lab[pure]).mean() > 0.99
    inside = fg_lab & pure
    assert inside.sum() > 0.5 * fg_lab.sum()


@pytest.mark.parametrize("op", list(GEOMETRIC))
def test_geometric_ops_keep_image_and_labels_aligned_2d(op):
    lab = _labels_2d()
    augment = build_augmentation(AugmentConfig(**GEOMETRIC[op]), spatial_dims=2, seed=3)
    changed = 0
    for _ in range(3):
        out = augment({"image": _as_image(lab), "label": lab[None]})
        _check_alignment(out, lab)
        changed += not np.array_equal(out["label"][0], lab)
    assert changed == 3  # the op really did something each time


@pytest.mark.parametrize("op", ["flip", "rot90", "rotate", "zoom", "elastic", "all"])
def test_geometric_ops_keep_image_and_labels_aligned_3d(op):
    lab = _labels_3d()
    augment = build_augmentation(AugmentConfig(**GEOMETRIC[op]), spatial_dims=3, seed=5)
    out = augment({"image": _as_image(lab), "label": lab[None]})
    assert out["image"].shape == (2, *lab.shape) and out["image"].dtype == np.float32
    _check_alignment(out, lab, min_iou=0.92)
    assert not np.array_equal(out["label"][0], lab)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_resampling_matches_scipy_affine_transform(spatial_dims):
    """One fused affine resampling equals scipy's (independent) affine_transform, mode "mirror"."""
    lab = _labels_2d() if spatial_dims == 2 else _labels_3d()
    image = _as_image(lab)
    rng = np.random.default_rng(4)
    matrix = np.eye(spatial_dims) + rng.uniform(-0.2, 0.2, (spatial_dims, spatial_dims))
    shift = rng.uniform(-6, 6, spatial_dims)
    out_image, out_label = _resample(image, lab[None], matrix, shift, None, padding_mode="reflection")
    centre = (np.array(lab.shape) - 1) / 2
    offset = centre + shift - matrix @ centre  # src = matrix @ dst + offset
    ref_image = ndi.affine_transform(image[1], matrix, offset=offset, order=1, mode="mirror")
    ref_label = ndi.affine_transform(lab, matrix, offset=offset, order=0, mode="mirror")
    np.testing.assert_allclose(out_image[1], ref_image, atol=1e-3)
    assert (out_label[0] == ref_label).mean() > 0.999  # exact up to rounding ties


def test_elastic_field_is_bicubic_interpolation_of_the_coarse_grid():
    coarse = np.random.default_rng(0).normal(0, 10, (2, 3, 3))
    field = _upsample_displacement(coarse, (40, 57))
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None], size=(40, 57), mode="bicubic", align_corners=True
    )[0].numpy()
    np.testing.assert_allclose(field, expected, atol=1e-4)
    coarse3 = np.random.default_rng(1).normal(0, 10, (3, 3, 3, 3))
    field3 = _upsample_displacement(coarse3, (9, 11, 13))
    np.testing.assert_allclose(field3[:, ::4, ::5, ::6], coarse3, atol=1e-4)  # control points kept


def test_flips_and_rot90_are_exact_and_shared():
    lab = _labels_2d()
    image = np.random.default_rng(0).random((2, *lab.shape)).astype(np.float32)
    augment = build_augmentation(AugmentConfig.preset("flips"), seed=1)
    for _ in range(6):
        out = augment({"image": image, "label": lab[None]})
        # the same one of the 8 exact dihedral transforms moved both keys
        matches = [
            (k, f)
            for k in range(4)
            for f in (False, True)
            if np.array_equal(out["label"][0], np.rot90(np.flip(lab, -1) if f else lab, k))
            and np.array_equal(out["image"], np.rot90(np.flip(image, -1) if f else image, k, axes=(-2, -1)))
        ]
        assert matches


def test_non_square_planes_keep_their_shape():
    lab = _labels_2d((48, 64))
    augment = build_augmentation(AugmentConfig(rot90_prob=1.0), seed=0)
    for _ in range(4):
        out = augment({"image": lab[None].astype(np.float32), "label": lab[None]})
        assert out["label"].shape == (1, 48, 64)
        np.testing.assert_array_equal(out["label"][0], lab[::-1, ::-1])  # only k = 2 fits


@pytest.mark.parametrize("dtype", [np.uint16, np.int64])
def test_label_dtype_is_kept(dtype):
    lab = _labels_2d().astype(dtype)
    out = build_augmentation(AugmentConfig.preset("full"), seed=0)({"image": lab[None] * 1.0, "label": lab[None]})
    assert out["label"].dtype == dtype and out["image"].dtype == np.float32


def test_same_seed_same_result_other_seed_differs():
    lab = _labels_2d()
    sample = {"image": lab[None].astype(np.float32), "label": lab[None]}
    config = AugmentConfig.preset("full")
    a, b, c = (build_augmentation(config, seed=s) for s in (7, 7, 8))
    for _ in range(4):
        out_a, out_b, out_c = a(sample), b(sample), c(sample)
        np.testing.assert_array_equal(out_a["image"], out_b["image"])
        np.testing.assert_array_equal(out_a["label"], out_b["label"])
    assert not np.array_equal(out_a["image"], out_c["image"])
    np.testing.assert_array_equal(sample["label"][0], lab)  # input untouched


def test_pickled_augmentation_continues_the_same_stream():
    lab = _labels_2d()
    sample = {"image": lab[None].astype(np.float32), "label": lab[None]}
    augment = build_augmentation(AugmentConfig.preset("full"), seed=2)
    augment(sample)
    clone = pickle.loads(pickle.dumps(augment))
    np.testing.assert_array_equal(augment(sample)["image"], clone(sample)["image"])


def test_intensity_ops_change_the_image_only():
    lab = _labels_2d()
    image = (lab[None] * 0.1 + np.random.default_rng(0).random((1, *lab.shape))).astype(np.float32)
    out = build_augmentation(AugmentConfig(**INTENSITY), seed=0)({"image": image, "label": lab[None], "id": 5})
    np.testing.assert_array_equal(out["label"][0], lab)
    assert out["id"] == 5
    assert not np.allclose(out["image"], image) and np.isfinite(out["image"]).all()


def test_invert_maps_min_to_max_per_channel():
    image = np.random.default_rng(1).normal(size=(2, 16, 16)).astype(np.float32)
    out = build_augmentation(AugmentConfig(invert_prob=1.0), seed=0)({"image": image})
    expected = image.min(axis=(1, 2), keepdims=True) + image.max(axis=(1, 2), keepdims=True) - image
    np.testing.assert_allclose(out["image"], expected, rtol=1e-6)
    assert "label" not in out


def test_contrast_brightness_and_gamma_follow_their_formulas():
    image = np.random.default_rng(2).random((1, 32, 32)).astype(np.float32)
    # contrast: mean kept, std scaled by a factor within the range
    cfg = AugmentConfig(contrast_prob=1.0, contrast_range=(1.5, 2.0))
    out = build_augmentation(cfg, seed=0)({"image": image})["image"]
    assert out.mean() == pytest.approx(image.mean(), abs=1e-5)
    assert 1.5 - 1e-4 <= out.std() / image.std() <= 2.0 + 1e-4
    # brightness: a constant shift of at most brightness_max standard deviations
    cfg = AugmentConfig(brightness_prob=1.0, brightness_max=0.5)
    shift = build_augmentation(cfg, seed=0)({"image": image})["image"] - image
    assert np.ptp(shift) < 1e-5 and 0 < abs(shift.mean()) <= 0.5 * image.std() + 1e-6
    # gamma: minimum and maximum kept, order of values kept, values changed
    cfg = AugmentConfig(gamma_prob=1.0, gamma_range=(2.0, 3.0))
    out = build_augmentation(cfg, seed=0)({"image": image})["image"]
    assert out.min() == pytest.approx(image.min(), abs=1e-6) and out.max() == pytest.approx(image.max(), abs=1e-6)
    np.testing.assert_array_equal(np.argsort(out.ravel(), kind="stable"), np.argsort(image.ravel(), kind="stable"))
    assert out.mean() < image.mean()


def test_poisson_noise_lies_on_the_count_lattice():
    image = np.random.default_rng(3).random((1, 32, 32)).astype(np.float32)
    cfg = AugmentConfig(poisson_prob=1.0, poisson_peak_range=(50.0, 50.0))
    out = build_augmentation(cfg, seed=0)({"image": image})["image"]
    lo, span = image.min(), np.ptp(image)
    counts = (out - lo) * 50.0 / span
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-3)
    assert abs(counts.mean() - ((image - lo) * 50.0 / span).mean()) < 1.0


def test_padding_zeros_gives_background_labels():
    lab = np.ones((32, 32), np.int32)
    cfg = AugmentConfig(translate_prob=1.0, translate_max_px=8.0, padding_mode="zeros")
    out = build_augmentation(cfg, seed=0)({"image": lab[None].astype(np.float32), "label": lab[None]})
    assert (out["label"] == 0).any() and ((out["image"] > 0.5) == (out["label"] > 0)).mean() > 0.97


def test_dataloader_workers_get_different_reproducible_streams():
    torch = pytest.importorskip("torch")
    lab = _labels_2d((32, 32))
    augment = build_augmentation(AugmentConfig.preset("full"), seed=0)

    class Twice(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return augment({"image": lab[None].astype(np.float32), "label": lab[None]})["image"]

    def run():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(Twice(), batch_size=1, num_workers=2, multiprocessing_context="fork")
        return [batch.numpy() for batch in loader]

    first, second = run(), run()
    assert not np.array_equal(first[0], first[1])  # each worker draws its own augmentations
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_presets_and_config_validation():
    assert AugmentConfig.preset("none") == AugmentConfig()
    flips = AugmentConfig.preset("flips")
    assert flips.flip_prob > 0 and flips.rot90_prob > 0 and not flips.has_resampling
    full = AugmentConfig.preset("full")
    assert full.has_resampling and full.invert_prob > 0
    assert AugmentConfig.from_dict(full.to_dict()) == full
    with pytest.raises(ValueError, match="Did you mean 'full'"):
        AugmentConfig.preset("ful")
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="zoom_range"):
        AugmentConfig(zoom_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="padding mode"):
        AugmentConfig(padding_mode="wrap")
    with pytest.raises(ValueError, match="AugmentConfig field"):
        AugmentConfig.from_dict({"flip_probability": 0.5})
    assert dataclasses.replace(full, elastic_prob=0.0).elastic_prob == 0.0


def test_bad_samples_raise_naming_the_key():
    augment = build_augmentation(AugmentConfig.preset("full"), spatial_dims=2, seed=0)
    with pytest.raises(ValueError, match=r"sample\['image'\]"):
        augment({"image": np.zeros((8, 8), np.float32)})
    with pytest.raises(ValueError, match=r"sample\['label'\]"):
        augment({"image": np.zeros((1, 8, 8), np.float32), "label": np.zeros((1, 8, 9), np.int32)})
    with pytest.raises(TypeError, match=r"sample\['label'\]"):
        augment({"image": np.zeros((1, 8, 8), np.float32), "label": np.zeros((1, 8, 8), np.float32)})
    with pytest.raises(ValueError, match="spatial_dims"):
        build_augmentation(AugmentConfig(), spatial_dims=4, seed=0)
    with pytest.raises(TypeError, match="config"):
        build_augmentation("full", seed=0)


def test_preview_grid_shows_aligned_outlines():
    lab = _labels_2d((40, 48))
    image = lab.astype(np.float32)
    grid = augment_preview([image, image], [lab, lab], config=AugmentConfig.preset("none"), n_per_image=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 40 + 4, 3 * 48 + 2 * 4, 3)
    red = (grid[..., 0] == 255) & (grid[..., 1] == 40)
    np.testing.assert_array_equal(red[:40, :48], find_boundaries(lab, mode="inner"))
    np.testing.assert_array_equal(grid[:40, :48], grid[:40, 52:100])  # "none" changes nothing

    grid = augment_preview([image], [lab], config=AugmentConfig(flip_prob=1.0), n_per_image=1)
    red = (grid[..., 0] == 255) & (grid[..., 1] == 40)
    np.testing.assert_array_equal(red[:, 52:], red[::-1, :48][:, ::-1])  # outlines moved with the image
    np.testing.assert_array_equal(grid[:, 52:], grid[::-1, 47::-1])
