"""evseg.augment: random augmentation of {"image", "label"} samples (one draw per call) and a preview grid."""

from evseg.augment.preview import augment_preview
from evseg.augment.transforms import PRESETS, Augmentation, AugmentConfig, build_augmentation

__all__ = ["PRESETS", "AugmentConfig", "Augmentation", "augment_preview", "build_augmentation"]
