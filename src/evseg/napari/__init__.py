"""evseg.napari: a napari plugin (segmentation dock widget, calibrated EM reader, synthetic sample).

Install with ``pip install "evseg[napari]"``; napari finds the plugin through the
``napari.manifest`` entry point (``napari.yaml`` in this folder). The widget module needs napari
and is only imported when it is used, so ``import evseg.napari`` works without napari.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SegmentWidget", "get_reader", "make_sample_data", "read_tem_image"]

INSTALL_HINT = 'pip install "evseg[napari]"'


def __getattr__(name: str) -> Any:
    if name == "SegmentWidget":
        from evseg.napari._widget import SegmentWidget

        return SegmentWidget
    if name in ("get_reader", "read_tem_image"):
        from evseg.napari import _reader

        return getattr(_reader, name)
    if name == "make_sample_data":
        from evseg.napari._sample_data import make_sample_data

        return make_sample_data
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
