"""evseg.io: read images with their pixel size, write calibrated TIFF/PNG/CSV/ROI files, overlays."""

from evseg.io.atomic import atomic_path
from evseg.io.overlay import render_overlay
from evseg.io.readers import (
    SUPPORTED_SUFFIXES,
    Image,
    ImageReadError,
    list_images,
    read_image,
    read_labels,
)
from evseg.io.writers import (
    write_csv,
    write_imagej_rois,
    write_labels,
    write_png,
    write_probability,
    write_tiff,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Image",
    "ImageReadError",
    "atomic_path",
    "list_images",
    "read_image",
    "read_labels",
    "render_overlay",
    "write_csv",
    "write_imagej_rois",
    "write_labels",
    "write_png",
    "write_probability",
    "write_tiff",
]
