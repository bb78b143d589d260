"""evseg.report: a self-contained HTML report of a predict run (plots and thumbnails embedded)."""

from evseg.report.html import PLOT_INSTALL_HINT, REPORT_NAME, THUMBNAIL_WIDTH, make_thumbnail, write_report

__all__ = ["PLOT_INSTALL_HINT", "REPORT_NAME", "THUMBNAIL_WIDTH", "make_thumbnail", "write_report"]
