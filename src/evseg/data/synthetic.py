"""Synthetic negative-stain TEM images of small extracellular vesicles with exact instance labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage as ndi
from scipy.special import exp1, ndtr, ndtri

from evseg._registry import look_up_option
from evseg._validate import as_rng, check_pixel_size

__all__ = ["SyntheticImage", "synthetic_tem_image", "synthetic_tem_dataset"]

_POLARITIES = ("dark", "bright", "random")
_HARMONICS = np.array([3.0, 4.0, 5.0])  # outline wobble orders (order 2 is the ellipse)


@dataclass(frozen=True, eq=False)
class SyntheticImage:
    """One synthetic micrograph and its ground truth.

    Attributes
    ----------
    image : ndarray of float32, shape (Y, X)
        Intensities in ``[0, 1]`` (bright background for ``polarity="dark"``).
    labels : ndarray of int32, shape (Y, X)
        Instance labels: 0 = background, ``1..n`` = vesicles (the whole vesicle up to the outer
        edge of its membrane; the stain halo around it and the debris are background).
    pixel_size_nm : float
        Pixel size in nanometres.
    """

    image: np.ndarray
    labels: np.ndarray
    pixel_size_nm: float


@dataclass(frozen=True)
class _Vesicles:
    """Geometry of the placed vesicles (pixels; one entry per vesicle)."""

    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray  # equivalent radius (area = pi r^2 before the wobble)
    aspect: np.ndarray  # major / minor axis
    angle: np.ndarray  # major-axis orientation (rad)
    wobble: np.ndarray  # (n, 3) relative amplitudes of the harmonics _HARMONICS
    phase: np.ndarray  # (n, 3)

    def boundary_radius(self, i: int, theta: np.ndarray | float) -> np.ndarray:
        """Distance (px) from the centre of vesicle ``i`` to its outline in direction ``theta``."""
        a = self.radius[i] * np.sqrt(self.aspect[i])
        b = self.radius[i] / np.sqrt(self.aspect[i])
        phi = np.asarray(theta) - self.angle[i]
        ellipse = a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)
        theta_k = np.multiply.outer(np.asarray(theta), _HARMONICS) + self.phase[i]
        return ellipse * (1.0 + (self.wobble[i] * np.cos(theta_k)).sum(axis=-1))

    def bounding_radius(self, i: int) -> float:
        """Radius (px) of a circle around vesicle ``i`` that contains its whole outline."""
        return float(self.radius[i] * np.sqrt(self.aspect[i]) * (1.0 + self.wobble[i].sum()))


def synthetic_tem_image(
    shape: tuple[int, int] = (512, 512),
    *,
    pixel_size_nm: float = 1.56,
    diameter_range_nm: tuple[float, float] = (30.0, 200.0),
    n_vesicles: int | None = None,
    vesicles_per_um2: float = 20.0,
    cluster_probability: float = 0.3,
    max_overlap: float = 0.3,
    polarity: str = "dark",
    contrast: float = 1.0,
    dose_e_per_px: float = 50.0,
    read_noise_std: float = 0.01,
    texture_std: float = 0.05,
    illumination_std: float = 0.1,
    debris_per_um2: float = 60.0,
    annotation_prob: float = 0.0,
    rng: int | np.random.Generator | None = None,
) -> SyntheticImage:
    """Draw a synthetic negative-stain TEM micrograph of small EVs with its instance labels.

    The look was matched by eye and by the background power spectrum to a real negative-stain
    micrograph of sEVs (``tem_ev_sample``, rescaled to 1.56 nm/px; see
    ``scripts/compare_synthetic.py``). Intensities are in units of the full range [0, 1]; each
    vesicle draws its own look from the ranges below, so images and vesicles vary in contrast:

    - background: level 0.45–0.65, stain texture with a 1/f^2 power spectrum between 2.5 and
      100 nm (``texture_std``), uneven illumination (a linear ramp and a smooth field at
      150–1500 nm scales, multiplicative, ``illumination_std``);
    - vesicles: round to slightly elliptical (axis ratio 1–1.4) with slightly wobbly outlines
      (harmonics 3–5), equivalent diameters from ``diameter_range_nm``; a bright membrane rim
      (+0.08–0.2, 10–22 nm wide, thicker and brighter on one side); a darker, textured,
      "cup-shaped" interior (−0.08–0.3, darker towards one side, with a darker fold);
    - a dark stain halo around each vesicle, not labelled: a narrow deep part (−0.1–0.28,
      decaying over 4–12 nm) and a wide shallow part (−0.05–0.16, over 25–90 nm), stronger on
      one side;
    - clusters of 2–4 vesicles that touch or overlap; each overlap pixel goes to the vesicle
      in which its normalised radius (distance / outline radius in that direction) is smallest,
      so the split passes through the points where the outlines cross, and each vesicle keeps a
      rim along the contact line;
    - stain debris, not labelled: small bright specks and fewer dark blobs;
    - a point-spread function (Gaussian, sigma 1.2 nm), Poisson (dose) and Gaussian (read)
      noise, a slight detector blur (sigma 0.75 px), clipping to [0, 1].

    The default density (20 per µm^2) is about ten times that of the real sample, to give more
    objects per training image.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(Y, X)`` in pixels (each at least 16).
    pixel_size_nm : float
        Pixel size in nm. All physical sizes below are converted with it.
    diameter_range_nm : tuple of float
        ``(min, max)`` equivalent diameter of the vesicles in nm. Diameters follow a log-normal
        distribution truncated to this range, centred on the geometric mean of the part of the
        range inside 50–120 nm (the most common sEV sizes), or of the whole range when it does not
        meet 50–120 nm.
    n_vesicles : int or None
        Number of vesicles to place. ``None`` draws it from a Poisson distribution with mean
        ``vesicles_per_um2`` times the image area. Fewer may be placed when the image is too
        crowded (placement gives up after a fixed number of tries).
    vesicles_per_um2 : float
        Mean vesicle density (per square micrometre) used when ``n_vesicles`` is ``None``.
    cluster_probability : float
        Probability in ``[0, 1]`` that a placed vesicle starts a cluster of 2–4 touching or
        overlapping vesicles.
    max_overlap : float
        Largest overlap within clusters, as a fraction of the smaller radius, in ``[0, 0.5]``;
        each pair overlaps by a uniform fraction in ``[min(0.05, max_overlap), max_overlap]``.
    polarity : {"dark", "bright", "random"}
        ``"dark"``: the usual negative-stain look (bright background, vesicles with a darker
        interior and a dark halo). ``"bright"``: the intensities are inverted (``1 - image``).
        ``"random"``: one of the two with probability 1/2.
    contrast : float
        Factor (> 0) on all vesicle and debris contrast (rim, interior, halo, specks).
    dose_e_per_px : float
        Electrons per pixel at intensity 1 (Poisson noise); larger is less noisy. ``inf``
        disables the Poisson noise.
    read_noise_std : float
        Standard deviation of the additive Gaussian noise (>= 0).
    texture_std : float
        Standard deviation of the stain texture (grain) of the background (>= 0).
    illumination_std : float
        Relative strength of the uneven illumination (>= 0): standard deviation of the end-to-end
        change of the linear ramp and of the smooth field (the latter on an unbounded plane; a
        512^2 image at 1.56 nm/px shows about a third of it).
    annotation_prob : float
        Probability (0–1) of burning a scale bar and its caption (e.g. "200 nm") into a corner, as
        microscope software does; annotations are background in the labels, so a network trained on
        them learns to ignore them. 0 (default) draws none and uses no random numbers for it.
    debris_per_um2 : float
        Density of stain specks per square micrometre (>= 0); about 80 % are small bright
        specks (4–10 nm across), 20 % darker blobs (4–12 nm across).
    rng : int, numpy.random.Generator or None
        Seed or generator; the same seed gives the same image.

    Returns
    -------
    SyntheticImage
        ``image`` (float32, ``shape``, values in ``[0, 1]``), ``labels`` (int32, ``shape``,
        vesicles numbered ``1..n`` consecutively) and ``pixel_size_nm``.

    Raises
    ------
    ValueError
        If a parameter is out of range (the message names it).

    Examples
    --------
    >>> sample = synthetic_tem_image((128, 128), n_vesicles=3, rng=0)
    >>> sample.image.shape, sample.image.dtype.name, sample.labels.dtype.name
    ((128, 128), 'float32', 'int32')
    >>> int(sample.labels.max()) <= 3
    True
    """
    shape = _check_shape(shape)
    pixel_size = check_pixel_size(pixel_size_nm)
    if pixel_size is None:
        raise ValueError("`pixel_size_nm` must be a positive number of nanometres, got None.")
    d_min, d_max = _check_range(diameter_range_nm)
    _check_fraction(cluster_probability, "cluster_probability", 1.0)
    _check_fraction(max_overlap, "max_overlap", 0.5)
    for name, value in (
        ("vesicles_per_um2", vesicles_per_um2),
        ("read_noise_std", read_noise_std),
        ("texture_std", texture_std),
        ("illumination_std", illumination_std),
        ("debris_per_um2", debris_per_um2),
    ):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if not (np.isfinite(annotation_prob) and 0.0 <= annotation_prob <= 1.0):
        raise ValueError(f"`annotation_prob` must be in [0, 1], got {annotation_prob!r}.")
    if not (np.isfinite(contrast) and contrast > 0):
        raise ValueError(f"`contrast` must be a finite number > 0, got {contrast!r}.")
    if not (dose_e_per_px > 0) or np.isnan(dose_e_per_px):
        raise ValueError(f"`dose_e_per_px` must be > 0 (or inf for no Poisson noise), got {dose_e_per_px!r}.")
    if n_vesicles is not None and (int(n_vesicles) != n_vesicles or n_vesicles < 0):
        raise ValueError(f"`n_vesicles` must be a non-negative integer or None, got {n_vesicles!r}.")
    look_up_option(polarity, _POLARITIES, what="polarity")
    gen = as_rng(rng)

    area_um2 = shape[0] * shape[1] * (pixel_size * 1e-3) ** 2
    n_target = gen.poisson(vesicles_per_um2 * area_um2) if n_vesicles is None else int(n_vesicles)
    diameters_px = _draw_diameters_nm(gen, 4 * n_target + 8, d_min, d_max) / pixel_size
    ves = _place_vesicles(gen, shape, n_target, diameters_px, cluster_probability, max_overlap)
    labels = _rasterise(shape, ves)

    image = _render(gen, labels, ves, pixel_size, contrast, texture_std, illumination_std, debris_per_um2)
    image = _add_noise(gen, image, dose_e_per_px, read_noise_std)
    invert = polarity == "bright" or (polarity == "random" and gen.random() < 0.5)
    if invert:
        image = 1.0 - image
    if annotation_prob > 0 and gen.random() < annotation_prob:
        drawn = _scale_bar_annotation(gen, shape, pixel_size)
        image = np.where(drawn >= 0, drawn, image)
        labels = np.where(drawn >= 0, 0, labels).astype(labels.dtype)
    return SyntheticImage(image=image.astype(np.float32), labels=labels, pixel_size_nm=pixel_size)


def _scale_bar_annotation(gen: np.random.Generator, shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """A burned-in scale bar with its caption in a random corner: its grey values, -1 elsewhere.

    The bar is 50–500 nm long (a round length), 1.5–3 % of the image height thick, black or
    white, with the caption in the same colour above it, optionally on a box of the other colour.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    height, width = shape
    length_nm = float(gen.choice([50, 100, 200, 250, 500]))
    bar_px = int(min(length_nm / pixel_size, 0.4 * width))
    thick = max(2, int(gen.uniform(0.015, 0.03) * height))
    font_px = max(8, int(gen.uniform(0.03, 0.06) * height))
    font = ImageFont.load_default(size=font_px)
    text = f"{int(length_nm)} nm"
    colour, box_colour = (0, 255) if gen.random() < 0.5 else (255, 0)
    canvas = PILImage.new("L", (max(bar_px, font_px * len(text)) + 8, thick + font_px + 12), 128)
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), text, fill=colour, font=font)
    draw.rectangle((4, font_px + 6, 4 + bar_px, font_px + 6 + thick), fill=colour)
    patch = np.asarray(canvas, dtype=np.float32)
    boxed = gen.random() < 0.5
    mask = np.ones(patch.shape, bool) if boxed else patch != 128
    patch = np.where(patch == 128, box_colour, patch) / 255.0
    ph, pw = min(patch.shape[0], height), min(patch.shape[1], width)
    margin = int(0.02 * min(shape))
    y0 = margin if gen.random() < 0.5 else height - ph - margin
    x0 = margin if gen.random() < 0.5 else width - pw - margin
    y0, x0 = max(y0, 0), max(x0, 0)
    out = np.full(shape, -1.0, np.float32)
    region = out[y0 : y0 + ph, x0 : x0 + pw]
    region[mask[:ph, :pw]] = patch[:ph, :pw][mask[:ph, :pw]]
    return out


def synthetic_tem_dataset(
    n_images: int,
    *,
    shape: tuple[int, int] = (512, 512),
    pixel_size_nm: float = 1.56,
    rng: int | np.random.Generator | None = None,
    **options: Any,
) -> list[SyntheticImage]:
    """Draw ``n_images`` synthetic micrographs, each from its own child random generator.

    Image ``i`` depends only on the seed and ``i`` (not on ``n_images``), so a longer data set
    starts with the images of a shorter one drawn with the same seed.

    Parameters
    ----------
    n_images : int
        Number of images (>= 0).
    shape : tuple of int
        Shape ``(Y, X)`` of every image in pixels.
    pixel_size_nm : float
        Pixel size in nm.
    rng : int, numpy.random.Generator or None
        Seed or generator; children are spawned from it (``Generator.spawn``).
    **options
        Further keyword options of :func:`synthetic_tem_image` (e.g. ``polarity="random"``).

    Returns
    -------
    list of SyntheticImage
        The images, in order.

    Raises
    ------
    ValueError
        If ``n_images`` is negative or not an integer, or an option is invalid.

    Examples
    --------
    >>> a = synthetic_tem_dataset(2, shape=(64, 64), rng=1)
    >>> b = synthetic_tem_dataset(3, shape=(64, 64), rng=1)
    >>> bool((a[1].image == b[1].image).all())
    True
    """
    if int(n_images) != n_images or n_images < 0:
        raise ValueError(f"`n_images` must be a non-negative integer, got {n_images!r}.")
    children = as_rng(rng).spawn(int(n_images))
    return [
        synthetic_tem_image(shape, pixel_size_nm=pixel_size_nm, rng=child, **options)
        for child in children
    ]


# ----------------------------------------------------------------------------- checks


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"`shape` must be a pair of integers (Y, X), got {shape!r}.") from None
    if len(out) != 2 or min(out) < 16:
        raise ValueError(f"`shape` must be (Y, X) with both sides >= 16 pixels, got {shape!r}.")
    return out  # type: ignore[return-value]


def _check_range(diameter_range_nm: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in diameter_range_nm)
    except (TypeError, ValueError):
        raise ValueError(
            f"`diameter_range_nm` must be a pair (min, max) in nm, got {diameter_range_nm!r}."
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(
            f"`diameter_range_nm` must satisfy 0 < min <= max (nm), got {diameter_range_nm!r}."
        )
    return lo, hi


def _check_fraction(value: float, name: str, upper: float) -> None:
    if not (np.isfinite(value) and 0.0 <= value <= upper):
        raise ValueError(f"`{name}` must be in [0, {upper}], got {value!r}.")


# ----------------------------------------------------------------------------- geometry


def _draw_diameters_nm(gen: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Truncated log-normal diameters (nm) in ``[lo, hi]``, weighted to 50–120 nm."""
    if hi <= lo * (1 + 1e-9):
        return np.full(n, lo)
    core_lo, core_hi = max(lo, 50.0), min(hi, 120.0)
    centre = np.sqrt(core_lo * core_hi) if core_lo < core_hi else np.sqrt(lo * hi)
    sigma = 0.4
    a, b = (np.log(lo) - np.log(centre)) / sigma, (np.log(hi) - np.log(centre)) / sigma
    z = ndtri(ndtr(a) + gen.uniform(0, 1, n) * (ndtr(b) - ndtr(a)))  # truncated normal
    return np.clip(np.exp(np.log(centre) + sigma * z), lo, hi)


def _place_vesicles(
    gen: np.random.Generator,
    shape: tuple[int, int],
    n_target: int,
    diameters_px: np.ndarray,
    cluster_probability: float,
    max_overlap: float,
) -> _Vesicles:
    """Place up to ``n_target`` vesicles: isolated ones apart, clusters touching/overlapping."""
    n_max = len(diameters_px)
    ves = _Vesicles(
        cy=np.zeros(n_max),
        cx=np.zeros(n_max),
        radius=diameters_px / 2.0,
        aspect=1.0 + gen.gamma(2.0, 0.06, n_max).clip(0, 0.4),
        angle=gen.uniform(0, np.pi, n_max),
        wobble=gen.uniform(0, 1, (n_max, 3)) * np.array([0.06, 0.035, 0.02]),
        phase=gen.uniform(0, 2 * np.pi, (n_max, 3)),
    )
    gap = 3.0  # px kept free between vesicles that do not belong to the same contact
    bound = np.array([ves.bounding_radius(i) for i in range(n_max)])
    placed: list[int] = []
    nxt = 0  # next unused parameter slot

    def fits(i: int, cy: float, cx: float, skip: int = -1) -> bool:
        """Whether vesicle ``i`` at (cy, cx) keeps clear of all placed ones except ``skip``."""
        idx = np.array([j for j in placed if j != skip], dtype=int)
        dist = np.hypot(ves.cy[idx] - cy, ves.cx[idx] - cx)
        return bool(np.all(dist >= bound[idx] + bound[i] + gap))

    tries = 0
    while len(placed) < n_target and nxt < n_max and tries < 60 * max(n_target, 1):
        tries += 1
        i = nxt
        cy, cx = gen.uniform(0, shape[0]), gen.uniform(0, shape[1])
        if not fits(i, cy, cx):
            continue
        ves.cy[i], ves.cx[i] = cy, cx
        placed.append(i)
        nxt += 1
        if gen.random() >= cluster_probability:
            continue
        members = [i]
        size = int(gen.integers(2, 5))
        for _ in range(8 * size):
            if len(members) >= size or len(placed) >= n_target or nxt >= n_max:
                break
            j, anchor = nxt, int(gen.choice(members))
            theta = gen.uniform(0, 2 * np.pi)
            overlap = gen.uniform(min(0.05, max_overlap), max_overlap)
            dist = (
                ves.boundary_radius(anchor, theta)
                + ves.boundary_radius(j, theta + np.pi)
                - overlap * min(ves.radius[anchor], ves.radius[j])
            )
            cy, cx = ves.cy[anchor] + dist * np.sin(theta), ves.cx[anchor] + dist * np.cos(theta)
            if not (0 <= cy < shape[0] and 0 <= cx < shape[1]) or not fits(j, cy, cx, skip=anchor):
                continue
            ves.cy[j], ves.cx[j] = cy, cx
            placed.append(j)
            members.append(j)
            nxt += 1
    keep = np.array(placed, dtype=int)
    return _Vesicles(
        cy=ves.cy[keep],
        cx=ves.cx[keep],
        radius=ves.radius[keep],
        aspect=ves.aspect[keep],
        angle=ves.angle[keep],
        wobble=ves.wobble[keep],
        phase=ves.phase[keep],
    )


def _rasterise(shape: tuple[int, int], ves: _Vesicles) -> np.ndarray:
    """Label map: each pixel inside an outline goes to the vesicle of smallest normalised radius."""
    labels = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, np.inf, dtype=np.float32)
    for i in range(len(ves.cy)):
        rb = ves.bounding_radius(i) + 1.0
        y0, y1 = max(int(ves.cy[i] - rb), 0), min(int(ves.cy[i] + rb) + 2, shape[0])
        x0, x1 = max(int(ves.cx[i] - rb), 0), min(int(ves.cx[i] + rb) + 2, shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        dy = (np.arange(y0, y1) - ves.cy[i])[:, None]
        dx = (np.arange(x0, x1) - ves.cx[i])[None, :]
        rho = (np.hypot(dy, dx) / ves.boundary_radius(i, np.arctan2(dy, dx))).astype(np.float32)
        win = (slice(y0, y1), slice(x0, x1))
        take = (rho < 1.0) & (rho < best[win])
        best[win][take] = rho[take]
        labels[win][take] = i + 1
    # Keep one connected piece per vesicle (clipping at the border or a crowded cluster could,
    # rarely, cut off a sliver), then number the vesicles 1..n in order.
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        pieces, n_pieces = ndi.label(labels[sl] == k)
        if n_pieces > 1:
            largest = 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
            labels[sl][(pieces > 0) & (pieces != largest)] = 0
    present = np.unique(labels)
    lut = np.zeros(len(ves.cy) + 1, dtype=np.int32)
    lut[present] = np.arange(len(present), dtype=np.int32)
    return lut[labels]


# ----------------------------------------------------------------------------- rendering


def _spectral_noise(
    gen: np.random.Generator, shape: tuple[int, int], *, fine_px: float, coarse_px: float
) -> np.ndarray:
    """Zero-mean noise with a 1/f^2 power spectrum between scales ``fine_px`` and ``coarse_px``.

    The power spectrum is ``exp(-k^2 / k_hi^2) / (k^2 + k_lo^2)`` (``k`` in cycles/px,
    ``k_hi = 1 / (2 pi fine_px)``, ``k_lo = 1 / (2 pi coarse_px)``), scaled so that the field has
    unit variance on an infinite plane; an image smaller than ``coarse_px`` therefore shows less
    variance (its lowest frequencies do not fit), as a crop of a larger field would.
    """
    white = gen.standard_normal(shape, dtype=np.float32)
    fy = scipy.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = scipy.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    k2 = fy**2 + fx**2
    k_lo2, k_hi2 = (1.0 / (2 * np.pi * coarse_px)) ** 2, (1.0 / (2 * np.pi * fine_px)) ** 2
    power = np.exp(-k2 / k_hi2) / (k2 + k_lo2)
    power[0, 0] = 0.0  # zero mean
    # variance of the continuous process: integral of the power over the frequency plane
    variance = np.pi * np.exp(k_lo2 / k_hi2) * exp1(k_lo2 / k_hi2)
    field = scipy.fft.irfft2(scipy.fft.rfft2(white) * np.sqrt(power / variance), s=shape)
    return field.astype(np.float32)


def _render(
    gen: np.random.Generator,
    labels: np.ndarray,
    ves: _Vesicles,
    pixel_size: float,
    contrast: float,
    texture_std: float,
    illumination_std: float,
    debris_per_um2: float,
) -> np.ndarray:
    """Noise-free intensity image (float32, roughly in [0, 1]) for the given label map."""
    shape = labels.shape
    level = gen.uniform(0.45, 0.65)
    image = np.float32(level) + texture_std * _spectral_noise(
        gen, shape, fine_px=2.5 / pixel_size, coarse_px=max(100.0 / pixel_size, 4.0)
    )
    if labels.max() > 0:
        image += contrast * _vesicle_field(gen, labels, ves, pixel_size)
    image += contrast * _debris(gen, shape, pixel_size, debris_per_um2)
    # Uneven illumination: a linear ramp plus a smooth random field, multiplicative.
    gy, gx = gen.normal(0, illumination_std, 2) / np.array(shape, dtype=np.float32)
    ramp = gy * (np.arange(shape[0], dtype=np.float32)[:, None] - shape[0] / 2) + gx * (
        np.arange(shape[1], dtype=np.float32)[None, :] - shape[1] / 2
    )
    smooth = _spectral_noise(gen, shape, fine_px=150.0 / pixel_size, coarse_px=1500.0 / pixel_size)
    image *= 1.0 + ramp + illumination_std * smooth
    return ndi.gaussian_filter(image, 1.2 / pixel_size)  # point-spread function, sigma 1.2 nm


def _vesicle_field(
    gen: np.random.Generator, labels: np.ndarray, ves: _Vesicles, pixel_size: float
) -> np.ndarray:
    """Additive contrast of the vesicles: rim, darker cup-shaped interior, stain halo around."""
    shape, n = labels.shape, len(ves.cy)

    def per_ves(lo: float, hi: float) -> np.ndarray:  # index 0 = background (unused)
        return np.concatenate([[0.0], gen.uniform(lo, hi, n)]).astype(np.float32)

    rim_amp, rim_nm = per_ves(0.08, 0.2), per_ves(10.0, 22.0)
    rim_var, rim_dir = per_ves(0.0, 0.8), per_ves(0, 2 * np.pi)
    dark_amp, cup, cup_dir = per_ves(0.08, 0.3), per_ves(0.0, 0.9), per_ves(0, 2 * np.pi)
    tex_amp, fold_amp = per_ves(0.04, 0.09), per_ves(0.0, 0.15)
    halo_deep, halo_deep_nm = per_ves(0.1, 0.28), per_ves(4.0, 12.0)
    halo_wide, halo_wide_nm = per_ves(0.05, 0.16), per_ves(25.0, 90.0)
    halo_var, halo_dir = per_ves(0.2, 0.9), per_ves(0, 2 * np.pi)
    cy, cx = (np.concatenate([[0.0], c]).astype(np.float32) for c in (ves.cy, ves.cx))
    rad = np.concatenate([[1.0], ves.radius]).astype(np.float32)
    inner_tex = _spectral_noise(gen, shape, fine_px=4.0 / pixel_size, coarse_px=30.0 / pixel_size)

    fg = labels > 0
    # Pixels where two vesicles meet count as edge too: each vesicle of a touching pair gets
    # its own rim along the contact line.
    touch = np.zeros(shape, dtype=bool)
    meet = (labels[1:] != labels[:-1]) & (labels[1:] > 0) & (labels[:-1] > 0)
    touch[1:] |= meet
    touch[:-1] |= meet
    meet = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
    touch[:, 1:] |= meet
    touch[:, :-1] |= meet
    d_in = ndi.distance_transform_edt(fg & ~touch)
    d_out, (iy, ix) = ndi.distance_transform_edt(~fg, return_indices=True)
    near = labels[iy, ix]  # nearest vesicle of every pixel (its own inside vesicles)
    dy = np.arange(shape[0], dtype=np.float32)[:, None] - cy[near]
    dx = np.arange(shape[1], dtype=np.float32)[None, :] - cx[near]
    dist = np.maximum(np.hypot(dy, dx), 1e-3)
    field = np.empty(shape, dtype=np.float32)

    # Inside: darker "cup" (more stain towards one side, a darker fold), texture, bright rim.
    k, d, uy, ux = near[fg], d_in[fg].astype(np.float32) * pixel_size, dy[fg], dx[fg]
    cos_t, sin_t = ux / dist[fg], uy / dist[fg]
    uy, ux = uy / rad[k], ux / rad[k]
    c_dir, s_dir = np.cos(cup_dir[k]), np.sin(cup_dir[k])
    dark = dark_amp[k] * np.clip(1.0 + cup[k] * (ux * c_dir + uy * s_dir), 0.0, None)
    dark += fold_amp[k] * np.exp(-((uy - 0.35 * s_dir) ** 2 + (ux - 0.35 * c_dir) ** 2) / 0.18)
    ramp = 1.0 - np.exp(-d / (0.6 * rim_nm[k]))
    rim_cos = cos_t * np.cos(rim_dir[k]) + sin_t * np.sin(rim_dir[k])
    rim_w = rim_nm[k] * (1.0 + 0.4 * rim_cos)
    rim = rim_amp[k] * (1.0 + rim_var[k] * rim_cos) * np.exp(-0.5 * ((d / rim_w - 0.45) / 0.3) ** 2)
    field[fg] = (tex_amp[k] * inner_tex[fg] - dark) * ramp + rim

    # Outside: stain pooled around the vesicle (narrow deep + wide shallow), uneven around it.
    bg = ~fg
    k, d = near[bg], d_out[bg].astype(np.float32) * pixel_size
    side_cos = (dx[bg] * np.cos(halo_dir[k]) + dy[bg] * np.sin(halo_dir[k])) / dist[bg]
    field[bg] = -(1.0 + halo_var[k] * side_cos) * (
        halo_deep[k] * np.exp(-d / halo_deep_nm[k]) + halo_wide[k] * np.exp(-d / halo_wide_nm[k])
    )
    return field


def _debris(
    gen: np.random.Generator, shape: tuple[int, int], pixel_size: float, per_um2: float
) -> np.ndarray:
    """Unlabelled stain specks: many small bright ones and fewer larger dark ones."""
    area_um2 = shape[0] * shape[1] * (pixel_size * 1e-3) ** 2
    out = np.zeros(shape, dtype=np.float32)
    # (fraction, amplitude range, diameter range nm); blobs are Gaussians of sigma = diameter / 4.
    kinds = ((0.8, (0.15, 0.45), (4.0, 10.0)), (0.2, (-0.3, -0.08), (4.0, 12.0)))
    for frac, (a_lo, a_hi), (d_lo, d_hi) in kinds:
        m = gen.poisson(frac * per_um2 * area_um2)
        if m == 0:
            continue
        sigma = np.maximum(gen.uniform(d_lo, d_hi, m) / 4.0 / pixel_size, 0.5)[:, None, None]
        amp = gen.uniform(a_lo, a_hi, m)[:, None, None]
        py, px = gen.uniform(0, shape[0], m)[:, None, None], gen.uniform(0, shape[1], m)[:, None, None]
        half = int(np.ceil(3 * sigma.max()))
        off = np.arange(-half, half + 1)
        ys = np.floor(py).astype(int) + off[None, :, None]
        xs = np.floor(px).astype(int) + off[None, None, :]
        blob = amp * np.exp(-((ys - py) ** 2 + (xs - px) ** 2) / (2 * sigma**2))
        ys, xs = np.broadcast_to(ys, blob.shape), np.broadcast_to(xs, blob.shape)
        ok = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
        np.add.at(out, (ys[ok], xs[ok]), blob[ok].astype(np.float32))
    return out


def _add_noise(
    gen: np.random.Generator, image: np.ndarray, dose_e_per_px: float, read_noise_std: float
) -> np.ndarray:
    """Poisson (dose) plus Gaussian (read) noise, then a slight detector blur; clipped to [0, 1]."""
    img = np.clip(image, 0.0, None)
    if np.isfinite(dose_e_per_px):
        img = gen.poisson(img * dose_e_per_px).astype(np.float32) / np.float32(dose_e_per_px)
    if read_noise_std > 0:
        img = img + gen.normal(0.0, read_noise_std, img.shape).astype(np.float32)
    img = ndi.gaussian_filter(img.astype(np.float32), 0.75)
    return np.clip(img, 0.0, 1.0)
