"""Turn binary mask files (from evseg or any tool) into instance label files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def split_mask_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    method: str = "radon",
    min_diameter_px: float = 0.0,
    progress: bool = False,
) -> list[Path]:
    """Label the objects of each binary mask file, splitting touching ones; write ``<stem>_labels.tif``.

    Parameters
    ----------
    inputs : sequence of path-like
        Mask files (any non-zero pixel is foreground) or folders of them.
    out_dir : path-like
        Output folder (created).
    method : {"radon", "watershed", "none"}
        Splitting method, see :func:`evseg.instances.split_instances`.
    min_diameter_px : float
        Objects with a smaller equivalent diameter (pixels) are dropped.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of Path
        The label files written (uint16, 0 = background).
    """
    from evseg.instances import label_components, remove_small_objects_by_diameter, split_instances
    from evseg.io import list_images, read_labels, write_labels

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(list_images(inputs), desc="masks", disable=not progress):
        mask = np.asarray(read_labels(path)) > 0
        labels = split_instances(label_components(mask), method=method)
        if min_diameter_px > 0:
            labels = remove_small_objects_by_diameter(labels, min_diameter_px=min_diameter_px)
        target = out / f"{path.stem}_labels.tif"
        write_labels(target, labels, pixel_size_nm=None)
        written.append(target)
    return written
