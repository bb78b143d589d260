"""Side-by-side figure: real negative-stain TEM crops of sEVs next to evseg synthetic images.

The real micrograph (``tem_ev_sample``, about 0.62 nm/px, read at run time, never copied) is
rescaled to the synthetic pixel size; two crops with vesicles are shown next to two synthetic
images drawn with the same pixel size and the same grey scale (0 = black, 1 = white, no
autoscaling), together with the intensity histograms and the radially averaged power spectra of
the background (vesicle-free areas). Usage::

    python scripts/compare_synthetic.py --out /tmp/synth_compare/compare.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.transform import rescale

from evseg.data.synthetic import synthetic_tem_image

DEFAULT_REAL = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "tem_ev_sample" / "images" / "sample.png"
)
REAL_PIXEL_NM = 0.624  # from the 500 nm scale bar (801 px), see SOURCE.md
# Crops (row, col) of the rescaled real image, at the synthetic pixel size, that hold vesicles.
REAL_CROPS = ((100, 640), (300, 40))
# A vesicle-free area of the rescaled real image (rows, cols) for the background spectrum.
REAL_BACKGROUND = (slice(700, 900), slice(300, 700))


def radial_power(patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a mean-removed patch: (frequency cycles/px, power)."""
    p = patch - patch.mean()
    spec = np.abs(np.fft.fftshift(np.fft.fft2(p))) ** 2 / p.size
    fy = np.fft.fftshift(np.fft.fftfreq(p.shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(p.shape[1]))[None, :]
    k = np.hypot(fy, fx)
    bins = np.linspace(0.01, 0.5, 40)
    idx = np.digitize(k.ravel(), bins)
    power = np.array([spec.ravel()[idx == i].mean() for i in range(1, len(bins))])
    return 0.5 * (bins[1:] + bins[:-1]), power


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="real micrograph (PNG)")
    parser.add_argument("--out", type=Path, required=True, help="output PNG")
    parser.add_argument("--pixel-size-nm", type=float, default=1.56)
    parser.add_argument("--size", type=int, default=512, help="crop / synthetic side (px)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = np.asarray(Image.open(args.real), dtype=np.float32) / 255.0
    real[2720:2920, 150:1050] = np.median(real)  # mask the burned-in scale bar and its text
    real = rescale(real, REAL_PIXEL_NM / args.pixel_size_nm, anti_aliasing=True).astype(np.float32)
    n = args.size
    crops = [real[r : r + n, c : c + n] for r, c in REAL_CROPS]
    rng = np.random.default_rng(args.seed)
    synth = [
        synthetic_tem_image((n, n), pixel_size_nm=args.pixel_size_nm, rng=rng) for _ in range(2)
    ]

    fig, axes = plt.subplots(2, 3, figsize=(16, 10.5))
    for ax, img, title in zip(
        [axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]],
        crops + [s.image for s in synth],
        ["real crop A", "real crop B", "synthetic 1", "synthetic 2"],
        strict=True,
    ):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{title} ({args.pixel_size_nm} nm/px, {n * args.pixel_size_nm:.0f} nm wide)")
        ax.axis("off")
    axes[1, 1].contour(synth[1].labels > 0, [0.5], colors="y", linewidths=0.5)
    axes[1, 1].set_title(axes[1, 1].get_title() + "\nyellow: outlines of the labels")

    ax = axes[0, 2]
    bins = np.linspace(0, 1, 101)
    for img, label in [(np.concatenate([c.ravel() for c in crops]), "real crops")] + [
        (s.image.ravel(), f"synthetic {i + 1}") for i, s in enumerate(synth)
    ]:
        ax.hist(img, bins=bins, histtype="step", density=True, label=label)
    ax.set_title("intensity histograms")
    ax.legend()

    ax = axes[1, 2]
    f, p = radial_power(real[REAL_BACKGROUND])
    ax.loglog(f, p, label="real background")
    for i, s in enumerate(synth):
        bg = np.where(s.labels == 0, s.image, np.nan)
        # the vesicle-free 128^2 block with the most background pixels
        best = max(
            ((y, x) for y in range(0, n - 127, 64) for x in range(0, n - 127, 64)),
            key=lambda yx: np.isfinite(bg[yx[0] : yx[0] + 128, yx[1] : yx[1] + 128]).sum(),
        )
        patch = s.image[best[0] : best[0] + 128, best[1] : best[1] + 128]
        ax.loglog(*radial_power(patch), label=f"synthetic {i + 1} background")
    ax.set_xlabel("frequency (cycles/px)")
    ax.set_title("background power spectrum")
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
