"""Tests for the training configuration: validation, TOML round trip, helpful errors."""

import pytest

from evseg.train.config import TrainConfig, config_to_toml, read_config_toml


def test_toml_round_trip(tmp_path):
    config = TrainConfig(arch="unet", arch_kwargs={"base_filters": 8, "depth": 2}, pixel_size_nm=None,
                         time_limit_min=2.5, epochs=3, augment="none", split_method="none")
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(config))
    assert read_config_toml(path) == config


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epochz = 3\n")
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        read_config_toml(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("arch", "frunett", "Did you mean 'frunet'"),
    ("epochs", 0, "epochs"),
    ("loss", "focal", "Unknown loss"),
    ("patch_size", 8, "patch_size"),
])
def test_invalid_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_augment_options_override_the_preset():
    config = TrainConfig(augment="full", augment_options={"elastic_prob": 0.0})
    assert config.augment_config().elastic_prob == 0.0
    assert config.augment_config().flip_prob == TrainConfig(augment="full").augment_config().flip_prob
    with pytest.raises(ValueError, match="elastic_prb"):
        TrainConfig(augment_options={"elastic_prb": 0.0})
