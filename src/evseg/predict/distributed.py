"""Run a predict job on an existing dask.distributed cluster: one task per image, outputs written by the workers.

This is what ``evseg predict ... --dask-scheduler ADDRESS`` (and ``predict_files(..., scheduler=...)``)
runs. It needs the optional extra ``pip install "evseg[dask]"`` (``dask[distributed]``) on the
machine that starts the job and on every worker.

How it works: the client checks that the scheduler answers (a short timeout; if it does not,
nothing is written), creates the output folder, sends the model once to every worker
(``scatter(broadcast=True)``; each worker process builds it once and keeps it), and submits one
task per image. Each task reads its image, segments it and writes ``<stem>_labels.tif`` etc.
**directly into the output folder**, then returns its measurements, summary row and report
thumbnail. A task that raises is retried twice (``retries=2``, e.g. after a network file-system
hiccup or a lost worker) and then reported as a failed image, never dropped. The client writes
``measurements.csv``, ``summary.csv`` and ``report.html`` at the end, in input order.

Shared storage is assumed: the input images and the output folder must be visible to every
worker **at the same absolute path** as on the client (an NFS/Lustre/SMB mount; relative paths
are made absolute on the client). The model itself need not be shared, it travels with the job.

Pointing it at a real cluster::

    # on every machine: the same environment, with evseg and the extra installed
    pip install "evseg[dask]"
    # on one machine: the scheduler (prints its address, e.g. tcp://10.0.0.5:8786)
    dask-scheduler
    # on each compute machine: N single-threaded worker processes (torch then uses cores // N threads each)
    dask-worker tcp://10.0.0.5:8786 --nworkers 4 --nthreads 1
    # from any machine that sees the shared storage
    evseg predict /shared/tem/run42 --out /shared/results/run42 --dask-scheduler tcp://10.0.0.5:8786

On an HPC batch system, ``dask-jobqueue`` (e.g. ``SLURMCluster``) starts the workers as jobs; pass
its ``scheduler_address``. Use one thread per worker process (``--nthreads 1``): the network
already runs on several torch threads, and each task's warnings are captured per process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evseg.models.store import SegmentationModel
from evseg.predict.batch import (
    ImageOutcome,
    ImageResult,
    OutputOptions,
    PackedModel,
    available_cores,
    error_text,
    pack_model,
    replay,
    run_one,
    worker_model,
)
from evseg.predict.pipeline import PredictOptions

logger = logging.getLogger(__name__)

__all__ = ["CONNECT_TIMEOUT_S", "DASK_INSTALL_HINT", "RETRIES", "connect", "run_on_dask"]

DASK_INSTALL_HINT = 'pip install "evseg[dask]"'
#: Seconds to wait for the scheduler before giving up (nothing is written then).
CONNECT_TIMEOUT_S = 10.0
#: Extra attempts of a failed image task before it is reported as failed.
RETRIES = 2


def import_distributed() -> Any:
    """The ``distributed`` module, or an ImportError that names the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"Running on a dask cluster (--dask-scheduler) needs dask.distributed, which is not installed: "
            f"{DASK_INSTALL_HINT}"
        ) from exc
    return distributed


def connect(address: str, *, timeout_s: float | None = None) -> Any:
    """Connect to a running dask.distributed scheduler, failing fast with a clear message.

    Parameters
    ----------
    address : str
        Scheduler address, e.g. ``"tcp://10.0.0.5:8786"`` (``host:port`` means tcp).
    timeout_s : float, optional
        Seconds to wait (default :data:`CONNECT_TIMEOUT_S`).

    Returns
    -------
    distributed.Client
        Not set as the default client; close it when done.

    Raises
    ------
    ConnectionError
        If the scheduler cannot be reached or does not answer as a dask scheduler.
    ImportError
        If dask.distributed is not installed.
    """
    distributed = import_distributed()
    from distributed.comm import get_address_host_port, parse_address

    timeout = CONNECT_TIMEOUT_S if timeout_s is None else float(timeout_s)
    hint = ("Check the address (the scheduler prints it at start, e.g. tcp://10.0.0.5:8786), that `dask-scheduler` "
            "is running and that this machine can reach it.")
    try:
        protocol, _ = parse_address(address)
        if protocol == "tcp":  # a plain socket first: an unreachable host fails within the timeout, quietly
            host, port = get_address_host_port(address)
            socket.create_connection((host, port), timeout=timeout).close()
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:
        raise ConnectionError(
            f"Cannot reach the dask scheduler at {address!r} within {timeout:g} s ({type(exc).__name__}: {exc}). "
            f"{hint} Nothing was written."
        ) from exc


def run_on_dask(
    files: Sequence[Path],
    out_dir: Path,
    model: SegmentationModel | str,
    *,
    scheduler: Any,
    pixel_size_nm: float | None = None,
    options: PredictOptions = PredictOptions(),
    outputs: OutputOptions = OutputOptions(),
    progress: bool = True,
    thumbnail_width: int | None = None,
    retries: int = RETRIES,
    connect_timeout_s: float | None = None,
) -> list[ImageOutcome]:
    """Segment image files on a dask cluster; the workers write the per-image files into ``out_dir``.

    The tables and the report are not written here (:func:`evseg.predict.batch.predict_files` does
    that with the returned outcomes).

    Parameters
    ----------
    files : sequence of Path
        Image files (not folders), readable by every worker at the same absolute path.
    out_dir : Path
        Output folder, created after the scheduler answered; must be writable by every worker at
        the same absolute path (shared storage).
    model : SegmentationModel or "classical"
        Sent to every worker once.
    scheduler : str or distributed.Client
        Scheduler address (a client is opened and closed here) or an open client (left open).
    pixel_size_nm, options, outputs
        As for :func:`evseg.predict.batch.predict_files`.
    progress : bool
        Progress bar over finished images.
    thumbnail_width : int, optional
        Longest side of the report thumbnails made by the workers (``None``: none).
    retries : int
        Extra attempts of an image whose task raised, before it is reported as failed.
    connect_timeout_s : float, optional
        Seconds to wait for the scheduler (default :data:`CONNECT_TIMEOUT_S`).

    Returns
    -------
    list of ImageOutcome
        One per file, in input order.

    Raises
    ------
    ConnectionError
        If the scheduler cannot be reached; nothing is written then.
    ImportError
        If dask.distributed is not installed.
    """
    distributed = import_distributed()
    own_client = not isinstance(scheduler, distributed.Client)
    client = connect(str(scheduler), timeout_s=connect_timeout_s) if own_client else scheduler
    try:
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        packed = pack_model(model)
        shipped = client.scatter(packed, broadcast=True) if packed.blob is not None else packed
        task = {"out_dir": out, "pixel_size_nm": pixel_size_nm, "outputs": outputs,
                "options": dataclasses.replace(options, progress=False), "thumbnail_width": thumbnail_width}
        slots = _slots_per_host(client)
        if not slots:
            logger.warning("The dask scheduler at %s has no workers yet: the images wait until workers join "
                           "(dask-worker %s).", client.scheduler.address, client.scheduler.address)
        logger.info("%d images on the dask cluster at %s (%d worker thread(s))", len(files),
                    client.scheduler.address, sum(slots.values()))
        futures = [client.submit(_dask_task, shipped, Path(path).resolve(), task, slots, retries=retries, pure=False)
                   for path in files]
        index = {future.key: i for i, future in enumerate(futures)}
        outcomes: list[ImageOutcome | None] = [None] * len(files)
        finished = distributed.as_completed(futures, loop=client.loop)
        for future in tqdm(finished, total=len(futures), desc="images", unit="image", disable=not progress):
            i = index[future.key]
            try:
                outcomes[i] = replay(future.result(), logs=True)
            except (Exception, asyncio.CancelledError) as exc:
                error = error_text(Path(files[i]), exc)
                if retries:
                    error += f" (after {retries + 1} attempts)"
                logger.error("%s", error)
                outcomes[i] = ImageOutcome(Path(files[i]), None, None, error, 0.0)
        return list(outcomes)  # type: ignore[arg-type]
    finally:
        if own_client:
            client.close()


def _slots_per_host(client: Any) -> dict[str, int]:
    """Worker threads per host, so that each task can give torch ``cores // slots`` threads."""
    try:
        info_all = client.scheduler_info(n_workers=-1)  # all workers (some versions list only a few by default)
    except TypeError:  # older distributed: no n_workers argument, all workers listed
        info_all = client.scheduler_info()
    slots: dict[str, int] = {}
    for info in info_all.get("workers", {}).values():
        host = str(info.get("host", ""))
        slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
    return slots


def _dask_task(packed: PackedModel, path: Path, task: dict[str, Any], slots: dict[str, int]) -> ImageResult:
    """One image on a dask worker: share the cores with the other workers of the host, segment, write."""
    import torch
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    busy = slots.get(get_address_host(worker.address)) or int(getattr(getattr(worker, "state", worker), "nthreads", 1))
    threads = max(1, available_cores() // busy)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return run_one(worker_model(packed), path, catch=False, **task)
