"""evseg: segment, count and measure small extracellular vesicles and other objects in microscopy images."""

__version__ = "0.1.0"

__all__ = ["__version__"]
