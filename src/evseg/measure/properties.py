"""Per-object measurements (size, shape, position, intensity) as tidy column tables, and summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.distance import pdist
from skimage.measure import marching_cubes, mesh_surface_area, regionprops_table

from evseg._validate import check_image, check_labels, check_pixel_size, check_same_shape
from evseg.instances.components import convex_hull_outlines

__all__ = [
    "MEASUREMENT_COLUMNS",
    "MEASUREMENT_COLUMNS_3D",
    "SUMMARY_COLUMNS",
    "feret_diameters",
    "measure_instances",
    "measure_instances_3d",
    "summarize_measurements",
]

MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "label",
    "centroid_y_px",
    "centroid_x_px",
    "centroid_y_nm",
    "centroid_x_nm",
    "area_px",
    "area_nm2",
    "equivalent_diameter_px",
    "equivalent_diameter_nm",
    "feret_max_nm",
    "feret_min_nm",
    "roundness",
    "mean_intensity",
)
"""Columns of :func:`measure_instances`, in order."""

MEASUREMENT_COLUMNS_3D: tuple[str, ...] = (
    "label",
    "centroid_z_px",
    "centroid_y_px",
    "centroid_x_px",
    "volume_px",
    "volume_nm3",
    "equivalent_diameter_px",
    "equivalent_diameter_nm",
    "surface_area_nm2",
    "sphericity",
    "mean_intensity",
)
"""Columns of :func:`measure_instances_3d`, in order."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "image",
    "count",
    "mean_diameter_nm",
    "median_diameter_nm",
    "sd_diameter_nm",
    "mean_diameter_px",
    "median_diameter_px",
    "sd_diameter_px",
)
"""Keys of :func:`summarize_measurements`, in order."""

_SURFACE_SMOOTHING_VOXELS = 0.8  # Gaussian sigma before marching cubes (see measure_instances_3d)


def feret_diameters(hull: np.ndarray) -> tuple[float, float]:
    """Maximum and minimum Feret (caliper) diameters of a convex polygon.

    Parameters
    ----------
    hull : ndarray of float, shape (H, 2)
        Vertices of a convex polygon in order (e.g. from
        :func:`evseg.instances.convex_hull_outlines`), in any length unit.

    Returns
    -------
    (float, float)
        ``(feret_max, feret_min)``: the largest distance between two vertices, and the smallest
        width between two parallel lines enclosing the polygon (rotating calipers: the minimum is
        reached with one line flush with an edge, so only the edge normals are tried).

    Examples
    --------
    >>> feret_diameters(np.array([[0.0, 0.0], [0.0, 4.0], [3.0, 4.0], [3.0, 0.0]]))
    (5.0, 3.0)
    """
    hull = np.asarray(hull, dtype=np.float64)
    if hull.ndim != 2 or hull.shape[1] != 2 or len(hull) < 3:
        raise ValueError(f"`hull` must be (H >= 3, 2) polygon vertices, got shape {hull.shape}.")
    feret_max = float(pdist(hull).max())
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    lengths = np.hypot(normals[:, 0], normals[:, 1])
    normals = normals[lengths > 0] / lengths[lengths > 0, None]
    projections = hull @ normals.T  # (H, E): every vertex projected on every edge normal
    feret_min = float((projections.max(axis=0) - projections.min(axis=0)).min())
    return feret_max, feret_min


def _check_intensity(image: np.ndarray | None, labels: np.ndarray, ndim: int) -> np.ndarray | None:
    if image is None:
        return None
    image = check_image(image, ndim=(ndim,))
    check_same_shape(image, labels, names=("image", "labels"))
    return image  # any real dtype: regionprops averages in float64 per object (no whole-image copy)


def _empty_table(columns: Sequence[str]) -> dict[str, np.ndarray]:
    return {c: np.zeros(0, dtype=np.int32 if c == "label" else np.float64) for c in columns}


def measure_instances(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    pixel_size_nm: float | None = None,
) -> dict[str, np.ndarray]:
    """Measure every object of a 2D label image: one row per object, one array per column.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Instance labels, 0 = background (use :func:`measure_instances_3d` for 3D).
    image : ndarray of float, shape (Y, X), optional
        Intensity image for ``mean_intensity`` (NaN without it). Not rescaled.
    pixel_size_nm : float or None
        Pixel size in nanometres; ``None`` (unknown) gives NaN in every ``*_nm*`` column.

    Returns
    -------
    dict of str to ndarray, shape (n_objects,)
        Keys :data:`MEASUREMENT_COLUMNS`, rows sorted by label:

        - ``label`` (int32);
        - ``centroid_y_px``, ``centroid_x_px``: centre of mass of the pixel centres; ``*_nm`` the
          same times ``pixel_size_nm``;
        - ``area_px`` (pixel count), ``area_nm2``;
        - ``equivalent_diameter_px``, ``_nm``: diameter of the disc of the same area,
          ``sqrt(4 area / pi)``;
        - ``feret_max_nm``, ``feret_min_nm``: largest and smallest caliper widths of the object's
          outline, taken through the midpoints between boundary and background pixels (so an
          ``h x w`` pixel rectangle has ``feret_min = h`` and a drawn disc of radius ``r`` has both
          within 1 px of ``2 r``, the digitisation limit);
        - ``roundness = 4 area / (pi feret_max^2)``: 1 for a disc, ``1 / aspect ratio`` for an
          ellipse, smaller for elongated or irregular shapes. Digitisation makes the Feret
          diameter of a drawn disc about 0.5 px too large in some directions, so drawn discs score
          about 0.95 at radius 10 px and 0.98 at radius 40 px;
        - ``mean_intensity``: mean of ``image`` over the object.

    Raises
    ------
    TypeError
        If ``labels`` is not an integer array or ``image`` is not numeric.
    ValueError
        If ``labels`` is not 2D, ``image`` has another shape, or ``pixel_size_nm`` is not positive.

    Examples
    --------
    >>> lab = np.zeros((10, 10), np.int32); lab[2:5, 1:9] = 7
    >>> t = measure_instances(lab, pixel_size_nm=2.0)
    >>> t["label"].tolist(), t["area_nm2"].tolist(), t["feret_min_nm"].tolist()
    ([7], [96.0], [6.0])
    """
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(
            f"`labels` must be 2D (Y, X) for measure_instances, got shape {arr.shape}; "
            "use measure_instances_3d for (Z, Y, X) labels."
        )
    labels = check_labels(arr, ndim=(2,))
    intensity = _check_intensity(image, labels, 2)
    pixel_size = check_pixel_size(pixel_size_nm)
    if not labels.any():
        return _empty_table(MEASUREMENT_COLUMNS)

    properties = ["label", "centroid", "area"] + (["intensity_mean"] if intensity is not None else [])
    props = regionprops_table(labels, intensity_image=intensity, properties=properties)
    label = np.asarray(props["label"], dtype=np.int32)
    area = np.asarray(props["area"], dtype=np.float64)
    hulls = convex_hull_outlines(labels)
    feret = np.array([feret_diameters(hulls[k - 1]) for k in label], dtype=np.float64)
    feret_max, feret_min = feret[:, 0], feret[:, 1]
    scale = np.nan if pixel_size is None else pixel_size
    diameter = np.sqrt(4.0 * area / np.pi)
    n = len(label)
    table = {
        "label": label,
        "centroid_y_px": np.asarray(props["centroid-0"], dtype=np.float64),
        "centroid_x_px": np.asarray(props["centroid-1"], dtype=np.float64),
        "centroid_y_nm": np.asarray(props["centroid-0"], dtype=np.float64) * scale,
        "centroid_x_nm": np.asarray(props["centroid-1"], dtype=np.float64) * scale,
        "area_px": area,
        "area_nm2": area * scale**2,
        "equivalent_diameter_px": diameter,
        "equivalent_diameter_nm": diameter * scale,
        "feret_max_nm": feret_max * scale,
        "feret_min_nm": feret_min * scale,
        "roundness": 4.0 * area / (np.pi * feret_max**2),
        "mean_intensity": (
            np.asarray(props["intensity_mean"], dtype=np.float64)
            if intensity is not None
            else np.full(n, np.nan)
        ),
    }
    return {c: table[c] for c in MEASUREMENT_COLUMNS}


def _check_voxel_size(voxel_size_nm: float | Sequence[float] | None) -> np.ndarray | None:
    if voxel_size_nm is None:
        return None
    sizes = np.broadcast_to(np.asarray(voxel_size_nm, dtype=np.float64), (3,)).copy()
    if np.asarray(voxel_size_nm).ndim > 1 or not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise ValueError(
            "`voxel_size_nm` must be a positive number or (z, y, x) positive numbers of "
            f"nanometres, got {voxel_size_nm!r}."
        )
    return sizes


def measure_instances_3d(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    voxel_size_nm: float | Sequence[float] | None,
) -> dict[str, np.ndarray]:
    """Measure every object of a 3D label image: volume, equivalent diameter, sphericity.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Instance labels, 0 = background.
    image : ndarray of float, shape (Z, Y, X), optional
        Intensity image for ``mean_intensity`` (NaN without it).
    voxel_size_nm : float, (float, float, float) or None
        Voxel size ``(z, y, x)`` in nanometres (one number for cubic voxels); ``None`` (unknown)
        gives NaN in the ``*_nm*`` columns and a sphericity computed in voxel units.

    Returns
    -------
    dict of str to ndarray, shape (n_objects,)
        Keys :data:`MEASUREMENT_COLUMNS_3D`, rows sorted by label: ``label``; centroids in voxels;
        ``volume_px`` (voxel count) and ``volume_nm3``; ``equivalent_diameter_px`` (in voxels,
        meaningful for cubic voxels) and ``_nm``, the diameter of the sphere of the same volume
        ``cbrt(6 V / pi)``; ``surface_area_nm2``; ``sphericity = pi^(1/3) (6 V)^(2/3) / A`` (1 for a
        sphere, smaller otherwise); ``mean_intensity``.

    Raises
    ------
    TypeError, ValueError
        For non-integer or non-3D ``labels``, an ``image`` of another shape, or a bad voxel size.

    Notes
    -----
    The surface area ``A`` is that of the ``skimage.measure.marching_cubes`` mesh (level 0.5,
    ``spacing`` = voxel size) of the object's mask smoothed by a Gaussian of 0.8 voxel along each
    axis (``skimage.measure.mesh_surface_area``). Without smoothing the staircase of a voxelised
    sphere makes ``A`` about 9 % too large; with it, the sphericity of digitised spheres is within
    2 % of 1 for radii of 8-30 voxels (6 % at radius 5) and that of a 2:1 spheroid within 0.01 of
    the exact 0.929. Sharp edges are rounded, so boxy objects read high (a cube of 12 voxels gives
    0.91, of 40 voxels 0.83, instead of 0.81).
    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(
            f"`labels` must be 3D (Z, Y, X) for measure_instances_3d, got shape {arr.shape}; "
            "use measure_instances for 2D labels."
        )
    labels = check_labels(arr, ndim=(3,))
    intensity = _check_intensity(image, labels, 3)
    voxel = _check_voxel_size(voxel_size_nm)
    if not labels.any():
        return _empty_table(MEASUREMENT_COLUMNS_3D)

    properties = ["label", "centroid", "area"] + (["intensity_mean"] if intensity is not None else [])
    props = regionprops_table(labels, intensity_image=intensity, properties=properties)
    label = np.asarray(props["label"], dtype=np.int32)
    volume_px = np.asarray(props["area"], dtype=np.float64)
    spacing = (1.0, 1.0, 1.0) if voxel is None else tuple(voxel)
    volume = volume_px * float(np.prod(spacing))  # in nm^3, or voxels when the size is unknown
    boxes = ndi.find_objects(labels)
    surface = np.empty(len(label))
    for i, k in enumerate(label):
        crop = np.pad(labels[boxes[k - 1]] == k, 2).astype(np.float32)
        smooth = ndi.gaussian_filter(crop, _SURFACE_SMOOTHING_VOXELS)
        if smooth.max() <= 0.5:  # a tiny object fades below the level when smoothed: use its voxels
            smooth = crop
        verts, faces, _, _ = marching_cubes(smooth, level=0.5, spacing=spacing)
        surface[i] = mesh_surface_area(verts, faces)
    scale = np.nan if voxel is None else 1.0
    table = {
        "label": label,
        "centroid_z_px": np.asarray(props["centroid-0"], dtype=np.float64),
        "centroid_y_px": np.asarray(props["centroid-1"], dtype=np.float64),
        "centroid_x_px": np.asarray(props["centroid-2"], dtype=np.float64),
        "volume_px": volume_px,
        "volume_nm3": volume * scale,
        "equivalent_diameter_px": np.cbrt(6.0 * volume_px / np.pi),
        "equivalent_diameter_nm": np.cbrt(6.0 * volume / np.pi) * scale,
        "surface_area_nm2": surface * scale,
        "sphericity": np.pi ** (1.0 / 3.0) * (6.0 * volume) ** (2.0 / 3.0) / surface,
        "mean_intensity": (
            np.asarray(props["intensity_mean"], dtype=np.float64)
            if intensity is not None
            else np.full(len(label), np.nan)
        ),
    }
    return {c: table[c] for c in MEASUREMENT_COLUMNS_3D}


def summarize_measurements(
    table: Mapping[str, np.ndarray], *, image_name: str
) -> dict[str, str | int | float]:
    """Summarise a measurement table of one image: object count and diameter statistics.

    Parameters
    ----------
    table : mapping of str to ndarray
        Output of :func:`measure_instances` or :func:`measure_instances_3d` (needs the columns
        ``equivalent_diameter_nm`` and ``equivalent_diameter_px``).
    image_name : str
        Name of the image, stored in the ``image`` key.

    Returns
    -------
    dict
        Keys :data:`SUMMARY_COLUMNS`: ``image``, ``count`` (int), and the mean, median and sample
        standard deviation (``ddof=1``) of the equivalent diameter in nm and in px. Statistics are
        NaN when there are no objects (the SD also for a single object) and the nm ones when the
        pixel size was unknown.

    Raises
    ------
    ValueError
        If a required column is missing or the two diameter columns differ in length.

    Examples
    --------
    >>> t = {"equivalent_diameter_nm": np.array([10.0, 20.0]),
    ...      "equivalent_diameter_px": np.array([5.0, 10.0])}
    >>> s = summarize_measurements(t, image_name="a.tif")
    >>> s["count"], s["mean_diameter_nm"], s["median_diameter_px"]
    (2, 15.0, 7.5)
    """
    columns = {}
    for unit in ("nm", "px"):
        key = f"equivalent_diameter_{unit}"
        if key not in table:
            raise ValueError(
                f"`table` has no column {key!r}; pass the output of measure_instances "
                f"(columns found: {sorted(table)})."
            )
        columns[unit] = np.asarray(table[key], dtype=np.float64).reshape(-1)
    if columns["nm"].size != columns["px"].size:
        raise ValueError(
            f"`table` columns differ in length ({columns['nm'].size} nm vs {columns['px'].size} px)."
        )
    count = int(columns["px"].size)
    summary: dict[str, str | int | float] = {"image": str(image_name), "count": count}
    for unit in ("nm", "px"):
        values = columns[unit]
        known = count > 0 and bool(np.isfinite(values).all())
        summary[f"mean_diameter_{unit}"] = float(np.mean(values)) if known else float("nan")
        summary[f"median_diameter_{unit}"] = float(np.median(values)) if known else float("nan")
        summary[f"sd_diameter_{unit}"] = (
            float(np.std(values, ddof=1)) if known and count > 1 else float("nan")
        )
    return {c: summary[c] for c in SUMMARY_COLUMNS}
