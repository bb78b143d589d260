"""napari dock widget: segment an image layer with an evseg model, add probability, labels and measured points."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evseg.napari import INSTALL_HINT

try:
    from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton
    from napari.layers import Image, Labels, Points
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f'The evseg napari widget needs napari and magicgui: {INSTALL_HINT} ({exc})') from exc

from evseg.predict.pipeline import CLASSICAL, PredictOptions

if TYPE_CHECKING:
    import napari

    from evseg.models.store import SegmentationModel
    from evseg.predict.pipeline import Segmentation

logger = logging.getLogger(__name__)

__all__ = ["MODEL_FOLDER", "SegmentWidget", "layer_pixel_size_nm"]

#: Model-menu entry that uses the folder chosen in "model folder".
MODEL_FOLDER = "model folder..."
MODEL_CHOICES: tuple[str, ...] = ("sev", CLASSICAL, MODEL_FOLDER)
MODEL_DEFAULT = "model default"
SPLIT_CHOICES: tuple[str, ...] = (MODEL_DEFAULT, "radon", "watershed", "none")
# Stages reported by the worker; the progress bar counts them.
_STAGES = ("Segmenting...", "Measuring...", "Adding layers...")


def layer_pixel_size_nm(layer: Image) -> float | None:
    """The in-plane pixel size (nm) implied by an image layer's ``scale`` and ``units``.

    Parameters
    ----------
    layer : napari.layers.Image

    Returns
    -------
    float or None
        With length units on the last axis (e.g. ``"nm"``, ``"um"``), the mean of the last two
        scales converted to nm. With napari's default ``"pixel"`` units, a scale other than 1 is
        taken to be in nm (evseg's convention); a scale of 1 means "not calibrated" (``None``).
    """
    scale = np.asarray(layer.scale[-2:], dtype=float)
    units = getattr(layer, "units", None)
    unit = units[-1] if units else None
    if unit is not None and unit.is_compatible_with("nanometer"):
        return float((float(scale.mean()) * unit).to("nanometer").magnitude)
    if np.allclose(scale, 1.0):
        return None
    return float(scale.mean())


@dataclass(frozen=True)
class _Failed:
    """What the worker returns when segmentation raised (see :func:`_segment_job`)."""

    error: Exception


def _segment_job(
    load: Callable[[], SegmentationModel | str],
    image: np.ndarray,
    *,
    pixel_size_nm: float | None,
    options: PredictOptions,
    source: str,
) -> Generator[str, None, tuple[Segmentation, dict[str, np.ndarray]] | _Failed]:
    """Worker body: load the model, segment, measure; yields the next stage's message after each step.

    Returns ``(segmentation, table)``, or the exception that stopped it: errors are returned rather
    than raised because napari 0.9's ``errored`` handler of workers fails under PySide6 (its
    task-status slot receives one argument too many).
    """
    from evseg.measure import measure_instances
    from evseg.predict.pipeline import segment_image

    try:
        model = load()
        yield _STAGES[0]
        result = segment_image(model, image, pixel_size_nm=pixel_size_nm, options=options, source=source)
        yield _STAGES[1]
        table = measure_instances(result.labels, image, pixel_size_nm=result.pixel_size_nm)
        yield _STAGES[2]
    except Exception as exc:  # shown to the user by SegmentWidget._on_returned
        logger.error("%s: segmentation failed", source, exc_info=True)
        return _Failed(exc)
    return result, table


class SegmentWidget(Container):
    """Dock widget that segments sEVs in an image layer and measures them.

    Pick an image layer, a model (the bundled ``"sev"``, the ``"classical"`` baseline, or a model
    folder), the pixel size in nm (pre-filled from the layer's scale; 0 = unknown, results in pixels)
    and optionally override the model's threshold, minimum diameter and split method. *Segment* runs
    :func:`evseg.predict.pipeline.segment_image` in a worker thread (napari shows its progress) and
    adds, on the image's scale and translate:

    - ``"<image> probability"``: foreground probability (float32, ``(Y, X)``);
    - ``"<image> labels"``: instance labels (int32, ``(Y, X)``);
    - ``"<image> objects"``: one point per object at its centroid, with the measurement table
      (:data:`evseg.measure.MEASUREMENT_COLUMNS`) as ``features``.

    Running again on the same image replaces the data of these layers. *Save CSV...* writes the
    last measurement table with :func:`evseg.io.write_csv`. Loaded models are cached per widget
    (a model folder is reloaded when its files change).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written (napari passes it to dock widgets).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._image = ComboBox(label="image", choices=self._image_layer_choices, nullable=False)
        self._model = ComboBox(label="model", choices=MODEL_CHOICES, value=MODEL_CHOICES[0])
        self._model_folder = FileEdit(label="model folder", mode="d", visible=False)
        self._pixel_size = FloatSpinBox(label="pixel size (nm)", min=0.0, max=1e6, step=0.01, value=0.0)
        self._threshold = FloatSpinBox(label="threshold", min=0.0, max=0.99, step=0.05, value=0.0)
        self._min_diameter = FloatSpinBox(label="min diameter (nm)", min=-1.0, max=1e5, step=1.0, value=-1.0)
        self._split = ComboBox(label="split touching", choices=SPLIT_CHOICES, value=MODEL_DEFAULT)
        self._run_button = PushButton(text="Segment")
        self._status = Label(value="")
        self._save_button = PushButton(text="Save CSV...", enabled=False)
        super().__init__(
            widgets=[
                self._image,
                self._model,
                self._model_folder,
                self._pixel_size,
                self._threshold,
                self._min_diameter,
                self._split,
                self._run_button,
                self._status,
                self._save_button,
            ]
        )
        self._pixel_size.native.setDecimals(4)
        self._pixel_size.native.setSpecialValueText("unknown")
        self._pixel_size.tooltip = "Pixel size of the image in nm; 0 = unknown (results in pixels)."
        self._threshold.native.setSpecialValueText(MODEL_DEFAULT)
        self._threshold.tooltip = "Foreground probability threshold; lowest value = the model's own."
        self._min_diameter.native.setSpecialValueText(MODEL_DEFAULT)
        self._min_diameter.tooltip = "Smaller objects are dropped (nm); lowest value = the model's own."
        self._models: dict[tuple[str, ...], SegmentationModel | str] = {}
        self._worker: Any = None
        self._table: dict[str, np.ndarray] | None = None
        self._source_name = ""

        self._image.changed.connect(self._prefill_pixel_size)
        self._model.changed.connect(self._on_model_changed)
        self._run_button.changed.connect(self._on_run_clicked)
        self._save_button.changed.connect(self._on_save_clicked)
        self._follow_layer_list(viewer)
        self._prefill_pixel_size()

    def _follow_layer_list(self, viewer: napari.viewer.Viewer) -> None:
        """Refresh the image menu when layers come and go, until the Qt widget is destroyed."""
        events = viewer.layers.events
        reset = self.reset_choices
        events.inserted.connect(reset)
        events.removed.connect(reset)

        def disconnect(*_: Any) -> None:
            events.inserted.disconnect(reset)
            events.removed.disconnect(reset)

        self.native.destroyed.connect(disconnect)

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """Whether a segmentation is in progress."""
        return self._worker is not None

    @property
    def measurements(self) -> dict[str, np.ndarray] | None:
        """The last measurement table (columns :data:`evseg.measure.MEASUREMENT_COLUMNS`), or ``None``."""
        return self._table

    @property
    def status(self) -> str:
        """The status line shown under the *Segment* button."""
        return str(self._status.value)

    # ---------------------------------------------------------------- options
    def _image_layer_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _prefill_pixel_size(self, *_: Any) -> None:
        layer = self._image.value
        if layer is not None:
            self._pixel_size.value = layer_pixel_size_nm(layer) or 0.0

    def _on_model_changed(self, value: str) -> None:
        self._model_folder.visible = value == MODEL_FOLDER

    def predict_options(self) -> PredictOptions:
        """The :class:`~evseg.predict.pipeline.PredictOptions` given by the widget's fields.

        Fields at their lowest value ("model default") leave the model's own value (``None``).
        """
        threshold = float(self._threshold.value)
        min_diameter = float(self._min_diameter.value)
        split = str(self._split.value)
        return PredictOptions(
            threshold=threshold if threshold > self._threshold.min else None,
            min_diameter_nm=min_diameter if min_diameter > self._min_diameter.min else None,
            split_method=None if split == MODEL_DEFAULT else split,
        )

    def _model_key(self) -> tuple[str, ...]:
        choice = str(self._model.value)
        if choice != MODEL_FOLDER:
            return (choice,)
        folder = Path(self._model_folder.value).expanduser()
        if not str(self._model_folder.value) or not folder.is_dir():
            raise ValueError(f"model folder: {str(folder)!r} is not a folder; choose an evseg model folder.")
        stamps = tuple(str(p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())
        return (str(folder.resolve()), *stamps)

    def _loader(self, key: tuple[str, ...]) -> Callable[[], SegmentationModel | str]:
        def load() -> SegmentationModel | str:
            if key not in self._models:
                from evseg.predict.batch import load_segmenter

                self._models[key] = load_segmenter(key[0])
            return self._models[key]

        return load

    # -------------------------------------------------------------------- run
    def run(self) -> Any:
        """Start segmenting the chosen image layer in a worker thread.

        Returns
        -------
        napari.qt.threading.GeneratorWorker
            The started worker; its results are added to the viewer when it returns.

        Raises
        ------
        RuntimeError
            If a segmentation is already running.
        ValueError
            If no image layer is chosen, the layer is not a 2D grey image, or the model folder
            does not exist.
        """
        from napari.qt.threading import create_worker

        if self.running:
            raise RuntimeError("A segmentation is already running; wait for it to finish.")
        layer = self._image.value
        if layer is None:
            raise ValueError("image: no image layer is chosen; open or add an image first.")
        data = layer.data[0] if layer.multiscale else layer.data
        if layer.rgb or data.ndim != 2:
            raise ValueError(
                f"image: layer {layer.name!r} has shape {tuple(data.shape)}"
                f"{' (RGB)' if layer.rgb else ''}; the widget segments 2D grey images "
                "(convert colour to grey; use the CLI for stacks)."
            )
        image = np.array(data)
        pixel_size = float(self._pixel_size.value)
        options = self.predict_options()
        load = self._loader(self._model_key())
        worker = create_worker(
            _segment_job,
            load,
            image,
            pixel_size_nm=pixel_size if pixel_size > 0 else None,
            options=options,
            source=layer.name,
            _progress={"total": len(_STAGES), "desc": f"evseg: {layer.name}"},
            _connect={
                "yielded": self._on_yielded,
                "returned": lambda out: self._on_returned(layer, out),
                "errored": self._on_errored,
                "finished": self._on_finished,
            },
            _start_thread=False,
        )
        self._worker = worker
        self._run_button.enabled = False
        self._status.value = "Loading model..."
        worker.start()
        return worker

    def _on_run_clicked(self, *_: Any) -> None:
        try:
            self.run()
        except (ValueError, RuntimeError) as exc:
            self._show_error(str(exc))

    def _on_yielded(self, message: str) -> None:
        self._status.value = message
        pbar = getattr(self._worker, "pbar", None)
        if pbar is not None:
            pbar.set_description(f"evseg: {message}")

    def _on_errored(self, exc: BaseException) -> None:
        # Only for errors outside _segment_job; napari's worker also shows them as notifications.
        self._status.value = f"Error: {exc}"

    def _show_error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self._status.value = f"Error: {message}"
        show_error(message)

    def _on_finished(self) -> None:
        self._worker = None
        self._run_button.enabled = True

    def _on_returned(self, layer: Image, out: tuple[Segmentation, dict[str, np.ndarray]] | _Failed) -> None:
        if isinstance(out, _Failed):
            self._show_error(f"{layer.name}: {out.error}")
            return
        result, table = out
        place = {"scale": layer.scale, "translate": layer.translate, "units": layer.units}
        self._set_layer(
            Image,
            f"{layer.name} probability",
            result.probability,
            place,
            colormap="magma",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            opacity=0.5,
        )
        self._set_layer(Labels, f"{layer.name} labels", result.labels, place, opacity=0.5)
        centroids = np.column_stack([table["centroid_y_px"], table["centroid_x_px"]]).reshape(-1, 2)
        points = self._set_layer(
            Points,
            f"{layer.name} objects",
            centroids,
            place,
            size=np.maximum(table["equivalent_diameter_px"], 1.0),
            face_color="transparent",
            border_color="yellow",
        )
        points.features = table
        self._table = table
        self._source_name = layer.name
        self._save_button.enabled = True
        n = len(table["label"])
        if result.pixel_size_nm is not None and n:
            size = f", median diameter {float(np.median(table['equivalent_diameter_nm'])):.1f} nm"
        elif n:
            size = f", median diameter {float(np.median(table['equivalent_diameter_px'])):.1f} px"
        else:
            size = ""
        self._status.value = f"{n} objects{size}."

    def _set_layer(self, kind: type, name: str, data: np.ndarray, place: dict[str, Any], **style: Any) -> Any:
        """Replace the data of layer ``name`` if it exists with this type, else add a new layer."""
        if name in self._viewer.layers and isinstance(self._viewer.layers[name], kind):
            existing = self._viewer.layers[name]
            existing.data = data
            for key, value in place.items():
                setattr(existing, key, value)
            if kind is Points:
                existing.size = style["size"]
            return existing
        new = kind(data, name=name, **place, **style)
        return self._viewer.add_layer(new)

    # ------------------------------------------------------------------- save
    def save_csv(self, path: str | os.PathLike) -> Path:
        """Write the last measurement table as CSV (columns :data:`evseg.measure.MEASUREMENT_COLUMNS`).

        Parameters
        ----------
        path : path-like
            Output file.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        RuntimeError
            If nothing has been segmented yet.
        """
        from evseg.io import write_csv
        from evseg.measure import MEASUREMENT_COLUMNS

        if self._table is None:
            raise RuntimeError("Nothing to save yet: segment an image first.")
        return write_csv(path, self._table, columns=MEASUREMENT_COLUMNS)

    def _on_save_clicked(self, *_: Any) -> None:
        from qtpy.QtWidgets import QFileDialog

        default = str(Path.cwd() / f"{self._source_name or 'evseg'}_measurements.csv")
        path, _ = QFileDialog.getSaveFileName(self.native, "Save measurements", default, "CSV files (*.csv)")
        if not path:
            return
        try:
            written = self.save_csv(path)
        except (OSError, ValueError, RuntimeError) as exc:
            self._show_error(f"could not save {path}: {exc}")
            return
        self._status.value = f"Saved {written.name}."
