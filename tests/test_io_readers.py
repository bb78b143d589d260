"""Tests for evseg.io.readers: formats, calibration in nm, colour, errors, folder listing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from evseg.io import (
    SUPPORTED_SUFFIXES,
    Image,
    ImageReadError,
    list_images,
    read_image,
    read_labels,
)


def _imagej_tiff(path: Path, data: np.ndarray, size: float, unit: str, **meta) -> Path:
    """An ImageJ TIFF written by tifffile directly (not by evseg), pixel ``size`` in ``unit``."""
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / size, 1 / size), metadata={"unit": unit, **meta})
    return path


# ----------------------------------------------------------------------------- TIFF calibration


@pytest.mark.parametrize("unit", ["um", "micron", "microns", "\\u00B5m"])
def test_imagej_tiff_micron_units_become_nm(tmp_path, unit):
    data = np.arange(30, dtype=np.uint8).reshape(5, 6)
    p = _imagej_tiff(tmp_path / "a.tif", data, 0.00156, unit)  # 0.00156 µm = 1.56 nm
    img = read_image(p)
    assert isinstance(img, Image)
    np.testing.assert_array_equal(img.data, data)
    assert img.data.dtype == np.uint8
    assert img.pixel_size_nm == pytest.approx(1.56, rel=1e-6)
    assert img.voxel_size_nm == pytest.approx((1.56, 1.56), rel=1e-6)
    assert img.path == p
    assert img.metadata["calibration"] == "imagej"


@pytest.mark.parametrize(("size", "unit", "nm"), [(15.6, "A", 1.56), (1.56, "nm", 1.56), (0.5, "pixel", None)])
def test_imagej_tiff_other_units(tmp_path, size, unit, nm):
    p = _imagej_tiff(tmp_path / "a.tif", np.zeros((4, 4), np.uint16), size, unit)
    img = read_image(p)
    assert img.pixel_size_nm == (pytest.approx(nm, rel=1e-6) if nm else None)


def test_imagej_stack_spacing_gives_z_voxel_size(tmp_path):
    data = np.zeros((3, 4, 5), np.uint16)
    p = _imagej_tiff(tmp_path / "z.tif", data, 0.004, "micron", spacing=0.05, axes="ZYX")
    img = read_image(p)
    assert img.data.shape == (3, 4, 5)
    assert img.voxel_size_nm == pytest.approx((50.0, 4.0, 4.0), rel=1e-6)
    assert img.pixel_size_nm == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize(
    ("size", "unit", "nm"), [(1.5, "nm", 1.5), (0.0015, "µm", 1.5), (15.0, "Å", 1.5), (0.0015, None, 1.5)]
)
def test_ome_tiff_physical_size_units(tmp_path, size, unit, nm):
    meta = {"axes": "YX", "PhysicalSizeX": size, "PhysicalSizeY": size}
    if unit is not None:  # OME's default unit is µm
        meta |= {"PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit}
    p = tmp_path / "a.ome.tif"
    tifffile.imwrite(p, np.zeros((6, 7), np.uint8), ome=True, metadata=meta)
    img = read_image(p)
    assert img.pixel_size_nm == pytest.approx(nm, rel=1e-6)
    assert img.metadata["calibration"] == "ome"


def test_ome_tiff_3d_physical_size_z(tmp_path):
    p = tmp_path / "z.ome.tif"
    meta = {"axes": "ZYX", "PhysicalSizeX": 2.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 2.0,
            "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.03, "PhysicalSizeZUnit": "µm"}
    tifffile.imwrite(p, np.zeros((4, 6, 7), np.uint8), ome=True, metadata=meta)
    img = read_image(p)
    assert img.data.shape == (4, 6, 7)
    assert img.voxel_size_nm == pytest.approx((30.0, 2.0, 2.0))


def test_plain_tiff_resolution_cm_is_used_and_inch_ignored(tmp_path):
    data = np.zeros((4, 4), np.uint8)
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, data, resolution=(1e7 / 2.5, 1e7 / 2.5), resolutionunit="CENTIMETER")
    assert read_image(cm).pixel_size_nm == pytest.approx(2.5, rel=1e-6)
    inch = tmp_path / "inch.tif"
    tifffile.imwrite(inch, data, resolution=(72, 72), resolutionunit="INCH")  # a viewer default
    img = read_image(inch)
    assert img.pixel_size_nm is None
    assert img.metadata["resolution_dpi"] == 72


def test_fei_tiff_pixel_width_in_metres(tmp_path):
    ini = "[User]\nDate=01/01/2020\n[Scan]\nPixelWidth=2.5e-09\nPixelHeight=2.5e-09\n"
    p = tmp_path / "fei.tif"
    tifffile.imwrite(p, np.zeros((8, 9), np.uint8), extratags=[(34682, "s", 0, ini, True)])
    assert read_image(p).pixel_size_nm == pytest.approx(2.5)


def test_sixteen_bit_and_float_tiff_keep_dtype_and_values(tmp_path, rng):
    for dtype in (np.uint16, np.float32):
        data = (rng.random((7, 9)) * 60000).astype(dtype)
        p = tmp_path / f"{np.dtype(dtype).name}.tif"
        tifffile.imwrite(p, data)
        img = read_image(p)
        assert img.data.dtype == dtype
        np.testing.assert_array_equal(img.data, data)
        assert img.pixel_size_nm is None and img.voxel_size_nm is None


def test_pixel_size_argument_overrides_file(tmp_path):
    p = _imagej_tiff(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), 1.56, "nm")
    img = read_image(p, pixel_size_nm=0.62)
    assert img.pixel_size_nm == 0.62
    assert img.voxel_size_nm == (0.62, 0.62)
    assert img.metadata["calibration"] == "argument"
    p3 = _imagej_tiff(tmp_path / "z.tif", np.zeros((2, 4, 4), np.uint8), 1.0, "nm", spacing=40.0, axes="ZYX")
    assert read_image(p3, pixel_size_nm=2.0).voxel_size_nm == (40.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        read_image(p, pixel_size_nm=-1)


def test_non_square_pixels_warn_and_average(tmp_path):
    p = tmp_path / "ns.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), imagej=True, resolution=(1 / 1.0, 1 / 3.0), metadata={"unit": "nm"})
    with pytest.warns(UserWarning, match="non-square") as rec:
        img = read_image(p)
    assert str(p) in str(rec[0].message)
    assert img.voxel_size_nm == pytest.approx((3.0, 1.0))
    assert img.pixel_size_nm == pytest.approx(2.0)
    q = tmp_path / "almost.tif"  # 0.5 % apart: no warning (warnings are errors in this suite)
    tifffile.imwrite(
        q, np.zeros((4, 4), np.uint8), imagej=True, resolution=(1 / 1.0, 1 / 1.005), metadata={"unit": "nm"}
    )
    assert read_image(q).pixel_size_nm == pytest.approx(1.0025)


@pytest.mark.parametrize(("size", "unit", "match"), [(0.1, "1/nm", "1/nm"), (1 / 72, "inch", "inches")])
def test_unknown_unit_warns_and_leaves_size_unknown(tmp_path, size, unit, match):
    p = _imagej_tiff(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), size, unit)
    with pytest.warns(UserWarning, match=match) as rec:
        img = read_image(p)
    assert str(p) in str(rec[0].message)
    assert img.pixel_size_nm is None
    assert read_image(p, pixel_size_nm=1.0).pixel_size_nm == 1.0  # no warning once the size is given


def test_ome_without_sizes_falls_back_to_imagej_style_resolution(tmp_path):
    p = tmp_path / "a.ome.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), ome=True, metadata={"axes": "YX"},
                     resolution=(1e7 / 3.0, 1e7 / 3.0), resolutionunit="CENTIMETER")
    img = read_image(p)
    assert img.pixel_size_nm == pytest.approx(3.0, rel=1e-6)
    assert img.metadata["calibration"] == "tiff-resolution"


def test_multichannel_tiff_is_refused(tmp_path):
    p = tmp_path / "c.tif"
    tifffile.imwrite(p, np.zeros((2, 5, 6), np.uint8), imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(ImageReadError, match="2 channels") as exc:
        read_image(p)
    assert str(p) in str(exc.value)


# ----------------------------------------------------------------------------- PNG / JPEG / colour


def test_png_grey_8_and_16_bit(tmp_path, rng):
    for data in (rng.integers(0, 256, (5, 7), dtype=np.uint8), rng.integers(0, 65536, (5, 7)).astype(np.uint16)):
        p = tmp_path / f"{data.dtype.name}.png"
        PILImage.fromarray(data).save(p)
        img = read_image(p)
        assert img.data.dtype == data.dtype
        np.testing.assert_array_equal(img.data, data)
        assert img.pixel_size_nm is None


def test_jpeg_grey_matches_pillow(tmp_path, rng):
    p = tmp_path / "a.jpg"
    PILImage.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(p, quality=90)
    img = read_image(p)
    with PILImage.open(p) as im:
        np.testing.assert_array_equal(img.data, np.asarray(im))
    assert img.data.dtype == np.uint8 and img.metadata["format"] == "jpeg"


def test_rgb_becomes_luminance_with_warning(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (200, 100, 50)
    p = tmp_path / "c.png"
    PILImage.fromarray(rgb).save(p)
    with pytest.warns(UserWarning, match="colour") as rec:
        img = read_image(p)
    assert str(p) in str(rec[0].message)
    assert img.data.shape == (2, 3) and img.data.dtype == np.float32
    assert img.data[0, 0] == pytest.approx(0.2125 * 200 + 0.7154 * 100 + 0.0721 * 50, rel=1e-5)
    assert img.metadata["colour"] == "RGB"


def test_grey_stored_as_rgba_is_read_without_warning(tmp_path, rng):
    grey = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 128)])
    p = tmp_path / "g.png"
    PILImage.fromarray(rgba).save(p)  # RGBA
    img = read_image(p)  # no warning (warnings are errors here)
    assert img.data.dtype == np.uint8
    np.testing.assert_array_equal(img.data, grey)


def test_real_png_and_3d_tiff(shared_data):
    png = read_image(shared_data / "tem_ev_sample" / "images" / "sample.png")
    assert png.data.shape == (3072, 3072) and png.data.dtype == np.uint8
    vol = read_image(shared_data / "nuclei3d" / "images" / "img3d.tif")
    assert vol.data.shape == (31, 61, 57) and vol.data.dtype == np.uint16


# ----------------------------------------------------------------------------- errors


def test_truncated_tiff_raises_naming_file(tmp_path, shared_data):
    src = next((shared_data / "ctc" / "Fluo-N2DL-HeLa" / "images").glob("*.tif"))
    blob = src.read_bytes()
    for n, name in ((100, "head.tif"), (len(blob) // 2, "half.tif")):
        bad = tmp_path / name
        bad.write_bytes(blob[:n])
        with pytest.raises(ImageReadError, match="could not be read as TIFF") as exc:
            read_image(bad)
        assert str(bad) in str(exc.value)


def test_truncated_png_raises_naming_file(tmp_path, rng):
    p = tmp_path / "a.png"
    PILImage.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(p)
    bad = tmp_path / "bad.png"
    bad.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="could not be read as PNG") as exc:
        read_image(bad)
    assert str(bad) in str(exc.value)


def test_missing_path_and_bad_suffix(tmp_path):
    missing = tmp_path / "nope.tif"
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        read_image(missing)
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(txt)
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


# ----------------------------------------------------------------------------- MRC


def test_mrc_voxel_size_angstrom_to_nm(tmp_path):
    mrcfile = pytest.importorskip("mrcfile")
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    p = tmp_path / "v.mrc"
    with mrcfile.new(p) as m:
        m.set_data(vol)
        m.voxel_size = (12.5, 12.5, 40.0)  # x, y, z in Å
    img = read_image(p)
    np.testing.assert_array_equal(img.data, vol)
    assert img.voxel_size_nm == pytest.approx((4.0, 1.25, 1.25))
    assert img.pixel_size_nm == pytest.approx(1.25)
    p2 = tmp_path / "i.mrc"
    with mrcfile.new(p2) as m:
        m.set_data(vol[0].astype(np.int16))
        m.voxel_size = 6.2
    img2 = read_image(p2)
    assert img2.data.shape == (3, 4) and img2.data.dtype == np.int16
    assert img2.pixel_size_nm == pytest.approx(0.62)


def test_mrc_without_mrcfile_names_the_extra(tmp_path, monkeypatch):
    p = tmp_path / "v.mrc"
    p.write_bytes(b"\0" * 1100)
    monkeypatch.setitem(sys.modules, "mrcfile", None)
    with pytest.raises(ImportError, match=r'evseg\[em\]'):
        read_image(p)


def test_corrupt_mrc_raises_naming_file(tmp_path):
    pytest.importorskip("mrcfile")
    p = tmp_path / "bad.mrc"
    p.write_bytes(b"not an mrc file" * 10)
    with pytest.raises(ImageReadError, match="could not be read as MRC") as exc:
        read_image(p)
    assert str(p) in str(exc.value)


# ----------------------------------------------------------------------------- Gatan DM3/DM4

# Calibration stored in each file (ImageData/Calibrations/Dimension: Scale, Units per axis,
# listed here in array order) as read independently by rosettasciio 0.15 and ncempy 1.x, and
# the shape encoded in the file names (X=64, Y=65, Z=66):
_DM_EXPECTED = {
    "dmTest_3D_int16_64,65,66": ((66, 65, 64), np.int16, ((4.0, "um"), (3.0, "nm"), (2.0, "pm"))),
    "dmTest_float32_nonSquare_diffPixelSize": ((64, 128), np.float32, ((2.0, "A"), (1.0, "nm"))),
}
_NM = {"um": 1e3, "nm": 1.0, "pm": 1e-3, "A": 0.1}


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
@pytest.mark.parametrize("stem", sorted(_DM_EXPECTED))
def test_dm_samples_shape_and_pixel_size(shared_data, stem, suffix):
    pytest.importorskip("rsciio")
    shape, dtype, cal = _DM_EXPECTED[stem]
    voxel = tuple(s * _NM[u] for s, u in cal)
    with pytest.warns(UserWarning, match="non-square"):  # both files have unequal Y and X sizes
        img = read_image(shared_data / "dm_samples" / f"{stem}{suffix}")
    assert img.data.shape == shape and img.data.dtype == dtype
    assert img.voxel_size_nm == pytest.approx(voxel)
    assert img.pixel_size_nm == pytest.approx((voxel[-2] + voxel[-1]) / 2)


def test_dm_samples_agree_with_ncempy(shared_data):
    pytest.importorskip("rsciio")
    dm = pytest.importorskip("ncempy.io.dm")
    for f in sorted((shared_data / "dm_samples").glob("dmTest*.dm*")):
        with pytest.warns(UserWarning, match="non-square"):
            img = read_image(f)
        with dm.fileDM(str(f)) as d:
            ds = d.getDataset(0)
        np.testing.assert_array_equal(img.data, ds["data"])
        expected = [float(s) * _NM[u] for s, u in zip(ds["pixelSize"], ds["pixelUnit"], strict=True)]
        assert img.voxel_size_nm == pytest.approx(expected, rel=1e-6)


def test_dm_spectrum_is_not_an_image(shared_data):
    pytest.importorskip("rsciio")
    p = shared_data / "dm_samples" / "08_carbon.dm3"  # an EELS spectrum (1 x 2048, eV)
    with pytest.raises(ImageReadError, match="1-D signal") as exc:
        read_image(p)
    assert str(p) in str(exc.value)


def test_dm_falls_back_to_ncempy_then_names_the_extra(shared_data, monkeypatch):
    p = shared_data / "dm_samples" / "dmTest_float32_nonSquare_diffPixelSize.dm4"
    monkeypatch.setitem(sys.modules, "rsciio.digitalmicrograph", None)
    if importlib.util.find_spec("ncempy") is not None:
        with pytest.warns(UserWarning, match="non-square"):
            img = read_image(p)
        assert img.metadata["reader"] == "ncempy"
        assert img.voxel_size_nm == pytest.approx((0.2, 1.0))
    monkeypatch.setitem(sys.modules, "ncempy.io", None)
    with pytest.raises(ImportError, match=r'pip install "evseg\[em\]"'):
        read_image(p)


# ----------------------------------------------------------------------------- labels


def test_read_labels_instance_tiff_and_binary_png(shared_data):
    lab_file = next((shared_data / "emps" / "labels").glob("*.tif"))
    lab = read_labels(lab_file)
    np.testing.assert_array_equal(lab, tifffile.imread(lab_file))
    assert lab.dtype == np.uint16
    mask_file = next((shared_data / "isbi2012" / "labels").glob("*.png"))
    mask = read_labels(mask_file)
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}  # returned as it is


def test_read_labels_refuses_float_and_colour(tmp_path):
    f = tmp_path / "f.tif"
    tifffile.imwrite(f, np.array([[0, 1.5], [2, 0]], np.float32))
    with pytest.raises(ImageReadError, match="labels must be integer") as exc:
        read_labels(f)
    assert str(f) in str(exc.value)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 1] = (255, 0, 0)
    c = tmp_path / "c.png"
    PILImage.fromarray(rgb).save(c)
    with pytest.raises(ImageReadError, match="labels must be integer"):
        read_labels(c)


def test_read_labels_whole_float_values_convert_with_warning(tmp_path):
    f = tmp_path / "f.tif"
    tifffile.imwrite(f, np.array([[0, 1], [2, 0]], np.float32))
    with pytest.warns(UserWarning, match="int32"):
        lab = read_labels(f)
    assert lab.dtype == np.int32
    np.testing.assert_array_equal(lab, [[0, 1], [2, 0]])


# ----------------------------------------------------------------------------- list_images


def test_list_images_folders_and_files(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for name in ("b.tif", "a.PNG", "c.jpeg", ".hidden.tif", "notes.txt", "sub/d.tif"):
        (d / name).write_bytes(b"")
    extra = tmp_path / "x.mrc"
    extra.write_bytes(b"")
    assert list_images([d, extra, d / "b.tif"]) == [d / "a.PNG", d / "b.tif", d / "c.jpeg", extra]
    assert list_images(str(d)) == [d / "a.PNG", d / "b.tif", d / "c.jpeg"]
    assert ".dm4" in SUPPORTED_SUFFIXES


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"empty.*\.tif") as exc:
        list_images([empty])
    assert str(empty) in str(exc.value)
    with pytest.raises(ValueError, match="not a supported"):
        list_images([empty / "readme.txt"])
