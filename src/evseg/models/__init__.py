"""evseg.models: U-Net and FRU-Net (2D/3D) and a name -> architecture registry."""

from evseg.models.registry import build_model, list_models, model_config
from evseg.models.unet import FRUNet, UNet

__all__ = ["FRUNet", "UNet", "build_model", "list_models", "model_config"]
