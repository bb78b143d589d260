"""evseg.instances: from foreground masks/probabilities to instance labels, splitting touching objects.

Pipeline step used by prediction: :func:`probability_to_labels` (threshold -> fill holes ->
components -> split -> size filter -> renumber). Splitters: :func:`split_radon` (FRU-Net Radon
cuts, 2D) and :func:`split_watershed` (distance-transform watershed, 2D/3D), chosen by name in
:func:`split_instances`.
"""

from evseg.instances.components import (
    check_mask,
    convex_hull_outlines,
    equivalent_diameters,
    fill_enclosed_holes,
    fill_small_holes,
    label_components,
    polygon_area,
    relabel_sequential,
    remove_border_objects,
    remove_small_objects_by_diameter,
)
from evseg.instances.postprocess import SPLIT_METHODS, probability_to_labels, split_instances
from evseg.instances.radon import split_radon
from evseg.instances.watershed import split_watershed

__all__ = [
    "SPLIT_METHODS",
    "check_mask",
    "convex_hull_outlines",
    "equivalent_diameters",
    "fill_enclosed_holes",
    "fill_small_holes",
    "label_components",
    "polygon_area",
    "probability_to_labels",
    "relabel_sequential",
    "remove_border_objects",
    "remove_small_objects_by_diameter",
    "split_instances",
    "split_radon",
    "split_watershed",
]
