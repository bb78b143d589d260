"""Tests for evseg.measure.properties: per-object tables (2D, 3D) and per-image summaries."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, polygon

from evseg.measure import (
    MEASUREMENT_COLUMNS,
    MEASUREMENT_COLUMNS_3D,
    SUMMARY_COLUMNS,
    feret_diameters,
    measure_instances,
    measure_instances_3d,
    summarize_measurements,
)

PIXEL_NM = 1.56


def _discs() -> tuple[np.ndarray, dict[int, tuple[float, float, float]]]:
    specs = {3: (40.2, 50.7, 10.0), 5: (60.0, 150.3, 20.0), 8: (140.5, 90.0, 35.0)}
    lab = np.zeros((200, 220), np.int32)
    for k, (cy, cx, r) in specs.items():
        lab[disk((cy, cx), r, shape=lab.shape)] = k
    return lab, specs


def test_disc_sizes_in_nm() -> None:
    lab, specs = _discs()
    t = measure_instances(lab, pixel_size_nm=PIXEL_NM)
    assert tuple(t) == MEASUREMENT_COLUMNS
    assert t["label"].tolist() == [3, 5, 8] and t["label"].dtype == np.int32
    for i, (cy, cx, r) in enumerate(specs.values()):
        d_nm = 2 * r * PIXEL_NM
        assert t["equivalent_diameter_nm"][i] == pytest.approx(d_nm, rel=0.02)
        assert t["area_nm2"][i] == pytest.approx(np.pi * r**2 * PIXEL_NM**2, rel=0.04)
        # digitisation: a drawn disc spans 2 r +- 1 px depending on direction and centre
        assert abs(t["feret_max_nm"][i] - d_nm) <= 1.1 * PIXEL_NM
        assert abs(t["feret_min_nm"][i] - d_nm) <= 1.1 * PIXEL_NM
        assert t["feret_min_nm"][i] <= t["feret_max_nm"][i]
        assert 0.93 <= t["roundness"][i] <= 1.02
        assert t["centroid_y_px"][i] == pytest.approx(cy, abs=0.5)
        assert t["centroid_x_px"][i] == pytest.approx(cx, abs=0.5)
    np.testing.assert_allclose(t["centroid_y_nm"], t["centroid_y_px"] * PIXEL_NM)
    np.testing.assert_allclose(t["centroid_x_nm"], t["centroid_x_px"] * PIXEL_NM)
    np.testing.assert_allclose(t["area_px"], np.bincount(lab.ravel())[[3, 5, 8]])
    np.testing.assert_allclose(t["equivalent_diameter_nm"], t["equivalent_diameter_px"] * PIXEL_NM)
    assert np.isnan(t["mean_intensity"]).all()


def test_rectangle_feret_is_diagonal_and_short_side() -> None:
    lab = np.zeros((40, 60), np.int32)
    lab[5:15, 10:40] = 1  # 10 x 30 pixels
    t = measure_instances(lab, pixel_size_nm=2.0)
    assert t["feret_min_nm"][0] == pytest.approx(10 * 2.0)
    assert t["feret_max_nm"][0] == pytest.approx(np.hypot(10, 30) * 2.0, abs=0.5 * 2.0)
    assert t["roundness"][0] == pytest.approx(4 * 300 / (np.pi * (t["feret_max_nm"][0] / 2) ** 2))


def test_rotated_rectangle_feret_matches_brute_force() -> None:
    angle = np.radians(27.0)
    u, v = np.array([np.sin(angle), np.cos(angle)]), np.array([np.cos(angle), -np.sin(angle)])
    corners = np.array([50.0, 50.0]) + np.array([a * 30 * u + b * 9 * v for a, b in
                                                 [(-1, -1), (-1, 1), (1, 1), (1, -1)]])
    lab = np.zeros((100, 100), np.int32)
    lab[polygon(corners[:, 0], corners[:, 1], lab.shape)] = 1
    t = measure_instances(lab, pixel_size_nm=1.0)
    # independent check: widths of the crack points of all object pixels over 3600 directions
    pts = np.argwhere(lab > 0).astype(float)
    cracks = (pts[:, None, :] + np.array([[0.5, 0], [-0.5, 0], [0, 0.5], [0, -0.5]])).reshape(-1, 2)
    theta = np.linspace(0, np.pi, 3600, endpoint=False)
    proj = cracks @ np.stack([np.sin(theta), np.cos(theta)])
    widths = proj.max(axis=0) - proj.min(axis=0)
    feret_max, feret_min = t["feret_max_nm"][0], t["feret_min_nm"][0]
    assert widths.min() == pytest.approx(feret_min, abs=0.02)
    assert widths.max() == pytest.approx(feret_max, abs=0.02)
    assert feret_min == pytest.approx(18.0, abs=1.0)
    assert feret_max == pytest.approx(np.hypot(60, 18), abs=1.0)
    unknown = measure_instances(lab)
    assert np.isnan(unknown["feret_max_nm"]).all() and np.isnan(unknown["area_nm2"]).all()
    assert unknown["roundness"][0] == pytest.approx(t["roundness"][0])
    assert unknown["equivalent_diameter_px"][0] == pytest.approx(t["equivalent_diameter_px"][0])


def test_feret_diameters_hand_computed() -> None:
    assert feret_diameters(np.array([[0.0, 0.0], [0.0, 4.0], [3.0, 4.0], [3.0, 0.0]])) == (5.0, 3.0)
    triangle = np.array([[0.0, 0.0], [0.0, 2.0], [np.sqrt(3.0), 1.0]])  # equilateral, side 2
    f_max, f_min = feret_diameters(triangle)
    assert f_max == pytest.approx(2.0) and f_min == pytest.approx(np.sqrt(3.0))
    with pytest.raises(ValueError, match="hull"):
        feret_diameters(np.zeros((2, 2)))


def test_mean_intensity_and_validation(rng: np.random.Generator) -> None:
    lab, _ = _discs()
    image = rng.normal(100, 10, lab.shape).astype(np.float32)
    t = measure_instances(lab, image, pixel_size_nm=PIXEL_NM)
    expected = [image[lab == k].astype(np.float64).mean() for k in (3, 5, 8)]
    np.testing.assert_allclose(t["mean_intensity"], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        measure_instances(lab, image[:10])
    with pytest.raises(TypeError, match="integer"):
        measure_instances(lab.astype(np.float32))
    with pytest.raises(ValueError, match="measure_instances_3d"):
        measure_instances(np.zeros((3, 4, 4), np.int32))
    with pytest.raises(ValueError, match="pixel_size_nm"):
        measure_instances(lab, pixel_size_nm=-1.0)


def test_empty_labels_give_empty_columns() -> None:
    t = measure_instances(np.zeros((10, 10), np.int32), pixel_size_nm=1.0)
    assert tuple(t) == MEASUREMENT_COLUMNS and all(len(v) == 0 for v in t.values())
    s = summarize_measurements(t, image_name="empty.tif")
    assert s["count"] == 0 and np.isnan(s["mean_diameter_nm"]) and np.isnan(s["sd_diameter_px"])


def _ball(shape: tuple[int, int, int], centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    grids = np.indices(shape, dtype=np.float64)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) < 1.0


def test_3d_sphere_volume_diameter_sphericity() -> None:
    lab = _ball((44, 44, 44), (21.7, 22.0, 22.3), (16, 16, 16)).astype(np.int32) * 2
    t = measure_instances_3d(lab, voxel_size_nm=2.0)
    assert tuple(t) == MEASUREMENT_COLUMNS_3D and t["label"].tolist() == [2]
    assert t["volume_nm3"][0] == pytest.approx(4 / 3 * np.pi * 32.0**3, rel=0.02)
    assert t["equivalent_diameter_nm"][0] == pytest.approx(64.0, rel=0.01)
    assert t["surface_area_nm2"][0] == pytest.approx(4 * np.pi * 32.0**2, rel=0.03)
    assert t["sphericity"][0] == pytest.approx(1.0, abs=0.03)
    assert t["centroid_z_px"][0] == pytest.approx(21.7, abs=0.1)
    unknown = measure_instances_3d(lab, voxel_size_nm=None)
    assert np.isnan(unknown["volume_nm3"]).all() and np.isnan(unknown["surface_area_nm2"]).all()
    assert unknown["sphericity"][0] == pytest.approx(t["sphericity"][0], rel=1e-6)
    assert unknown["equivalent_diameter_px"][0] == pytest.approx(32.0, rel=0.01)


def test_3d_anisotropic_voxels() -> None:
    # a sphere of radius 24 nm sampled with 3 nm z steps and 1.5 nm in-plane pixels
    lab = _ball((22, 40, 40), (10.5, 19.5, 19.5), (8, 16, 16)).astype(np.int32)
    t = measure_instances_3d(lab, voxel_size_nm=(3.0, 1.5, 1.5))
    assert t["equivalent_diameter_nm"][0] == pytest.approx(48.0, rel=0.02)
    assert t["sphericity"][0] == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="voxel_size_nm"):
        measure_instances_3d(lab, voxel_size_nm=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="measure_instances for 2D"):
        measure_instances_3d(np.zeros((4, 4), np.int32), voxel_size_nm=1.0)


def test_3d_prolate_spheroid_sphericity_matches_the_formula() -> None:
    b, c = 10.0, 20.0  # semi-axes (voxels): b, b, c
    lab = _ball((46, 26, 26), (22.6, 13.1, 12.8), (c, b, b)).astype(np.int32)
    e = np.sqrt(1 - b**2 / c**2)
    area = 2 * np.pi * b**2 * (1 + c / (b * e) * np.arcsin(e))
    volume = 4 / 3 * np.pi * b * b * c
    expected = np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area  # 0.929
    t = measure_instances_3d(lab, voxel_size_nm=1.0)
    assert t["sphericity"][0] == pytest.approx(expected, abs=0.015)
    assert t["surface_area_nm2"][0] == pytest.approx(area, rel=0.02)


def test_3d_cube_volume_and_intensity() -> None:
    cube = np.zeros((20, 20, 20), np.int32)
    cube[4:16, 4:16, 4:16] = 3
    t = measure_instances_3d(cube, np.full(cube.shape, 2.5), voxel_size_nm=1.0)
    assert t["label"].tolist() == [3]
    assert t["volume_nm3"][0] == 12**3 and t["mean_intensity"][0] == 2.5
    assert 0.8 < t["sphericity"][0] < 0.95  # 0.806 exactly; the smoothing rounds the edges


def test_summarize_measurements() -> None:
    lab, _ = _discs()
    t = measure_instances(lab, pixel_size_nm=PIXEL_NM)
    s = summarize_measurements(t, image_name="discs.tif")
    assert tuple(s) == SUMMARY_COLUMNS
    d = t["equivalent_diameter_nm"]
    assert s["image"] == "discs.tif" and s["count"] == 3
    assert s["mean_diameter_nm"] == pytest.approx(d.sum() / 3)
    assert s["median_diameter_nm"] == pytest.approx(sorted(d)[1])
    assert s["sd_diameter_nm"] == pytest.approx(np.sqrt(((d - d.mean()) ** 2).sum() / 2))
    assert s["mean_diameter_px"] == pytest.approx(s["mean_diameter_nm"] / PIXEL_NM)
    unknown = summarize_measurements(measure_instances(lab), image_name="x")
    assert np.isnan(unknown["mean_diameter_nm"]) and unknown["mean_diameter_px"] > 0
    one = summarize_measurements({k: v[:1] for k, v in t.items()}, image_name="one")
    assert one["count"] == 1 and np.isnan(one["sd_diameter_nm"]) and one["mean_diameter_nm"] > 0
    with pytest.raises(ValueError, match="equivalent_diameter_nm"):
        summarize_measurements({"label": np.arange(3)}, image_name="bad")


def test_tiny_3d_object_does_not_break_the_surface_measurement():
    from evseg.measure import measure_instances_3d

    labels = np.zeros((10, 10, 10), np.int32)
    labels[4:6, 4, 4] = 1  # two voxels: fades below 0.5 when smoothed
    table = measure_instances_3d(labels, voxel_size_nm=(1.0, 1.0, 1.0))
    assert table["label"].tolist() == [1] and np.isfinite(table["surface_area_nm2"][0])
