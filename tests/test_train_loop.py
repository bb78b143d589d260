"""Tests for the training loop: checkpoints, resume equals uninterrupted, time limit, model folder."""

import numpy as np
import pytest
import torch

from evseg.data.normalize import percentile_normalize
from evseg.models.store import create_model, load_model
from evseg.train import loop
from evseg.train.config import TrainConfig
from evseg.train.data import TrainingImage


def _discs(n, rng, shape=(64, 64)):
    """Images with separate bright discs (one per 32-px cell) on a noisy background, and their labels."""
    from skimage.draw import disk

    out = []
    for i in range(n):
        labels = np.zeros(shape, np.int32)
        cells = [(y, x) for y in range(0, shape[0] - 31, 32) for x in range(0, shape[1] - 31, 32)]
        for k, (y, x) in enumerate(cells, start=1):
            if rng.random() < 0.3:
                continue
            centre = (y + 16 + rng.integers(-4, 5), x + 16 + rng.integers(-4, 5))
            rr, cc = disk(centre, int(rng.integers(5, 9)), shape=shape)
            labels[rr, cc] = k
        image = (labels > 0) * 1.0 + rng.normal(0, 0.3, shape)
        out.append(TrainingImage(f"d{i}", percentile_normalize(image), labels))
    return out


CONFIG = TrainConfig(arch="frunet", arch_kwargs={"base_filters": 4, "depth": 2, "dropout": 0.1}, epochs=3,
                     steps_per_epoch=2, patch_size=32, batch_size=2, precision="fp32", pixel_size_nm=None,
                     split_method="none", augment="full")


def _model():
    torch.manual_seed(0)
    return create_model(CONFIG.arch, CONFIG.arch_kwargs, pixel_size_nm=None)


def test_model_folder_contents_and_reload(tmp_path, rng):
    data = _discs(3, rng)
    result = loop.train_model(_model(), data[:2], data[2:], CONFIG, tmp_path, progress=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "weights.pt", "history.csv", "train_config.toml", "checkpoint_last.pt"} <= names
    assert result.epochs_run == 3 and len(result.history) == 3
    reloaded = load_model(tmp_path)
    assert reloaded.config["validation"]["epoch"] == result.best_epoch
    assert reloaded.config["training_data"]["n_images"] == 2
    assert reloaded.pixel_size_nm is None


def test_resume_after_interruption_gives_the_same_weights(tmp_path, rng, monkeypatch):
    data = _discs(3, rng)
    loop.train_model(_model(), data[:2], data[2:], CONFIG, tmp_path / "full", progress=False)

    real_validate = loop.validate
    calls = {"n": 0}

    def interrupt_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(loop, "validate", interrupt_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        loop.train_model(_model(), data[:2], data[2:], CONFIG, tmp_path / "cut", progress=False)
    monkeypatch.setattr(loop, "validate", real_validate)
    state = torch.load(tmp_path / "cut" / "checkpoint_last.pt", weights_only=False)
    assert state["epoch"] == 2  # the two finished epochs were kept
    result = loop.train_model(_model(), data[:2], data[2:], CONFIG, tmp_path / "cut", resume=True, progress=False)
    assert result.epochs_run == 3
    full = torch.load(tmp_path / "full" / "checkpoint_last.pt", weights_only=False)["network"]
    resumed = torch.load(tmp_path / "cut" / "checkpoint_last.pt", weights_only=False)["network"]
    for key in full:
        torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0)


def test_time_limit_stops_early_and_keeps_a_model(tmp_path, rng):
    data = _discs(3, rng)
    config = CONFIG.replace(epochs=50, time_limit_min=1e-4)
    result = loop.train_model(_model(), data[:2], data[2:], config, tmp_path, progress=False)
    assert result.stop_reason == "time limit"
    assert result.epochs_run == 1
    assert (tmp_path / "weights.pt").is_file()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, rng):
    data = _discs(2, rng)
    with pytest.raises(FileNotFoundError, match="Cannot resume"):
        loop.train_model(_model(), data[:1], data[1:], CONFIG, tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_tiny_model_learns_discs(tmp_path):
    """Train for real on synthetic discs where the answer is known: F1@0.5 must be high."""
    data = _discs(12, np.random.default_rng(1), shape=(96, 96))
    config = CONFIG.replace(epochs=30, steps_per_epoch=10, batch_size=4, patch_size=64, augment="flips",
                            learning_rate=3e-3,
                            arch_kwargs={"base_filters": 8, "depth": 2}, select_metric="f1",
                            early_stopping_patience=None)
    torch.manual_seed(0)
    model = create_model(config.arch, config.arch_kwargs, pixel_size_nm=None)
    result = loop.train_model(model, data[:9], data[9:], config, tmp_path, progress=False)
    assert result.best_metrics["f1"] > 0.85
    assert result.best_metrics["jaccard"] > 0.8


@pytest.mark.parametrize("balance", [False, True])
def test_border_weights_balance_classes_only_when_asked(rng, balance):
    from evseg.data.patches import PatchSampler

    images = _discs(2, rng)
    config = CONFIG.replace(loss="weighted_bce_dice", augment="none", border_class_balance=balance)
    sampler = PatchSampler([t.image for t in images], [t.labels for t in images], (32, 32), foreground_bias=1.0)
    _, targets, weight = loop._batch(sampler, np.random.default_rng(0), config)
    foreground = targets[:, 0] > 0.5
    assert foreground.any()
    fg_weights = weight[:, 0][foreground]
    if balance:  # w_c = 0.5 / foreground fraction > 1 on sparse discs
        assert float(fg_weights.min()) > 1.0
    else:  # objects get weight 1; only background gaps between objects get the border term
        assert torch.all(fg_weights == 1.0)
        assert float(weight[:, 0][~foreground].min()) == 1.0
