"""evseg.report: a self-contained HTML report of a predict run (plots and thumbnails embedded)."""

from evseg.report.html import (
    PLOT_INSTALL_HINT,
    REPORT_NAME,
    THUMBNAIL_WIDTH,
    describe_model,
    describe_parameters,
    make_thumbnail,
    thumbnail_width_for,
    write_report,
)

__all__ = [
    "PLOT_INSTALL_HINT",
    "REPORT_NAME",
    "THUMBNAIL_WIDTH",
    "describe_model",
    "describe_parameters",
    "make_thumbnail",
    "thumbnail_width_for",
    "write_report",
]
