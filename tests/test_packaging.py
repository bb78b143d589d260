"""The base install stays lean: heavy, GUI or GPL packages only come with extras."""

from importlib.metadata import requires

import pytest

HEAVY = ("napari", "dask", "distributed", "onnxruntime", "rosettasciio", "ncempy", "torchvision", "pyside6", "monai")


def _base_requirements() -> list[str]:
    reqs = requires("evseg")
    if reqs is None:
        pytest.skip("evseg is not installed as a distribution")
    return [r.split(";")[0].strip().lower() for r in reqs if "extra ==" not in r]


def test_base_install_pulls_no_heavy_package():
    base = _base_requirements()
    assert base, "no base requirements found"
    for name in HEAVY:
        assert not any(r.startswith(name) for r in base), f"{name} must be an extra, not a base requirement"


def test_torch_is_a_base_requirement():
    assert any(r.startswith("torch") for r in _base_requirements())
