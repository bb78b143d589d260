"""evseg.baselines: segmentation without learning (the classical baseline, ``--model classical``)."""

from evseg.baselines.classical import segment_classical

__all__ = ["segment_classical"]
