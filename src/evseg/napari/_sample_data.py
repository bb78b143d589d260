"""napari sample data: a seeded synthetic negative-stain TEM micrograph of sEVs with its true labels."""

from __future__ import annotations

from typing import Any

#: Pixel size (nm) of the sample, the grid of the bundled model.
SAMPLE_PIXEL_SIZE_NM = 1.56


def make_sample_data(
    *, shape: tuple[int, int] = (512, 512), rng: int = 0
) -> list[tuple[Any, dict[str, Any], str]]:
    """A synthetic sEV micrograph (image layer) and its ground-truth instance labels (labels layer).

    Parameters
    ----------
    shape : (int, int)
        Image size in pixels ``(Y, X)``.
    rng : int
        Seed of :func:`evseg.data.synthetic.synthetic_tem_image` (the same seed gives the same image).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``(image float32 (Y, X), {...}, "image")`` and ``(labels int32 (Y, X), {...}, "labels")``,
        both with ``scale`` = 1.56 nm per pixel and ``units`` = ``"nm"``.
    """
    from evseg.data.synthetic import synthetic_tem_image

    sample = synthetic_tem_image(shape, pixel_size_nm=SAMPLE_PIXEL_SIZE_NM, rng=rng)
    common = {"scale": (sample.pixel_size_nm,) * 2, "units": ("nm", "nm")}
    return [
        (sample.image, {"name": "synthetic sEVs", **common}, "image"),
        (sample.labels, {"name": "synthetic sEVs true labels", "opacity": 0.4, **common}, "labels"),
    ]
