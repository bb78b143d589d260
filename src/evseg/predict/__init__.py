"""evseg.predict: tiled inference over any predictor callable, and torch predictor wrappers."""

from evseg.predict.tiling import bf16_supported, tiled_predict, torch_predictor

__all__ = ["bf16_supported", "tiled_predict", "torch_predictor"]
