"""evseg.measure: per-object measurements as tidy tables (one row per object) and per-image summaries."""

from evseg.measure.properties import (
    MEASUREMENT_COLUMNS,
    MEASUREMENT_COLUMNS_3D,
    SUMMARY_COLUMNS,
    feret_diameters,
    measure_instances,
    measure_instances_3d,
    summarize_measurements,
)

__all__ = [
    "MEASUREMENT_COLUMNS",
    "MEASUREMENT_COLUMNS_3D",
    "SUMMARY_COLUMNS",
    "feret_diameters",
    "measure_instances",
    "measure_instances_3d",
    "summarize_measurements",
]
