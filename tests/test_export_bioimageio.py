"""bioimage.io export: a valid spec-0.5 package whose files, tensors and architecture reproduce the model."""

import ast
import hashlib
import importlib.util
import sys
import zipfile

import numpy as np
import pytest
import torch

from evseg.data.normalize import percentile_normalize
from evseg.export import MissingExtraError
from evseg.export.bioimageio import ARCHITECTURE_FILE, collect_leaked_files, export_bioimageio, network_source
from evseg.models.store import create_model, load_model, save_model

spec = pytest.importorskip("bioimageio.spec")
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny FRU-Net loaded from a folder named ``tiny_sev`` (the package name comes from it)."""
    torch.manual_seed(0)
    model = create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.56)
    return load_model(save_model(model, tmp_path_factory.mktemp("models") / "tiny_sev"))


@pytest.fixture(scope="module")
def package(tiny_model, tmp_path_factory):
    """A zipped package with every weight format available here; test tensors 64 × 64."""
    return export_bioimageio(tiny_model, tmp_path_factory.mktemp("bioimageio") / "tiny.zip", test_size=64)


@pytest.fixture(scope="module")
def unpacked(package, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def rdf(unpacked):
    return yaml.safe_load((unpacked / "rdf.yaml").read_text())


def _validate(package):
    """(status, format_version, failed details, report) of bioimageio.spec's validation."""
    descr = spec.load_description(package)
    summary = descr.validation_summary
    failed = [d.name for d in summary.details if d.status == "failed"]
    return summary.status, str(getattr(descr, "format_version", "")), failed, summary.format()


def _test_model(package, weight_format):
    """(status, report) of bioimageio.core's test_model (skips where bioimageio.core is missing)."""
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(package, weight_format=weight_format)
    return summary.status, summary.format()


def test_package_passes_bioimageio_spec_validation(package):
    with collect_leaked_files():
        status, format_version, failed, report = _validate(package)
    assert status in ("valid-format", "passed"), report
    assert format_version.startswith("0.5.")
    assert not failed


def test_description_states_units_processing_halo_and_citations(tiny_model, rdf):
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    spatial_in = [a for a in inp["axes"] if a["type"] == "space"]
    assert [a["id"] for a in spatial_in] == ["y", "x"]
    assert all(a["unit"] == "nanometer" and a["scale"] == pytest.approx(1.56, rel=1e-7) for a in spatial_in)
    # bioimage.io computes output sizes as int(size * scale / scale): exact for every size here
    # (with scale 1.56 itself, 96 would give 95)
    scale = spatial_in[0]["scale"]
    assert all(int(n * scale / scale) == n for n in range(1, 20000))
    assert all(a["size"]["step"] == 4 for a in spatial_in)  # depth 2: multiples of 4
    scale_range = next(p for p in inp["preprocessing"] if p["id"] == "scale_range")
    assert scale_range["kwargs"]["min_percentile"] == 1.0
    assert scale_range["kwargs"]["max_percentile"] == 99.8
    assert scale_range["kwargs"]["axes"] == ["y", "x"]  # per sample
    assert [p["id"] for p in out["postprocessing"] if p["id"] != "ensure_dtype"] == ["sigmoid"]
    spatial_out = [a for a in out["axes"] if a["type"] == "space"]
    # default halo: min(32, receptive-field bound 26) rounded to a multiple of divisor / 2
    assert all(a["halo"] == 26 and a["size"]["axis_id"] == a["id"] for a in spatial_out)
    assert all(a["size"]["min"] >= 2 * 26 for a in spatial_in)
    channel = next(a for a in out["axes"] if a["type"] == "channel")
    assert channel["channel_names"] == ["foreground"]
    dois = {c["doi"] for c in rdf["cite"]}
    assert {"10.1038/s41598-019-49431-3", "10.1007/978-3-319-24574-4_28"} <= dois
    assert rdf["license"] == "MIT" and rdf["authors"]
    assert rdf["config"]["evseg"]["pixel_size_nm"] == 1.56
    assert "tiny_sev" in rdf["name"]


def test_files_match_their_sha256_and_the_readme_has_a_validation_section(unpacked, rdf):
    entries = [rdf["inputs"][0]["test_tensor"], rdf["outputs"][0]["test_tensor"], rdf["documentation"],
               *rdf["covers"], *rdf["weights"].values(), rdf["weights"]["pytorch_state_dict"]["architecture"]]
    for entry in entries:
        digest = hashlib.sha256((unpacked / entry["source"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], entry["source"]
    assert "## Validation" in (unpacked / "README.md").read_text()
    expected = {"pytorch_state_dict", "torchscript"} | ({"onnx"} if "onnx" in rdf["weights"] else set())
    assert set(rdf["weights"]) == expected
    assert all(w.get("parent") == "pytorch_state_dict" for k, w in rdf["weights"].items() if k != "pytorch_state_dict")


def test_test_output_is_sigmoid_of_network_on_normalised_test_input(tiny_model, unpacked):
    raw = np.load(unpacked / "test_input.npy")
    out = np.load(unpacked / "test_output.npy")
    assert raw.shape == (1, 1, 64, 64) and out.shape == (1, 1, 64, 64)
    assert raw.dtype == np.float32 and out.dtype == np.float32
    x = percentile_normalize(raw[0, 0], low=1.0, high=99.8)
    with torch.no_grad():
        want = torch.sigmoid(tiny_model.network.eval()(torch.from_numpy(x)[None, None])).numpy()
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_architecture_file_rebuilds_the_network_without_evseg(tiny_model, unpacked, rdf):
    source = (unpacked / ARCHITECTURE_FILE).read_text()
    imported = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not any(name.split(".")[0] == "evseg" for name in imported)
    module_spec = importlib.util.spec_from_file_location("evseg_network_copy", unpacked / ARCHITECTURE_FILE)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    network = getattr(module, arch["callable"])(**arch["kwargs"])
    state = torch.load(unpacked / rdf["weights"]["pytorch_state_dict"]["source"], weights_only=True)
    network.load_state_dict(state)
    x = torch.rand(2, 1, 24, 36)
    with torch.no_grad():
        torch.testing.assert_close(network.eval()(x), tiny_model.network.eval()(x), atol=0, rtol=0)
    assert source == network_source()


def test_bioimageio_core_reproduces_the_test_outputs(package):
    with collect_leaked_files():
        status, report = _test_model(package, "torchscript")
    assert status == "passed", report


@pytest.mark.slow
@pytest.mark.parametrize("weight_format", ["pytorch_state_dict", "onnx"])
def test_bioimageio_core_runs_every_weight_format(package, weight_format):
    with collect_leaked_files():
        status, report = _test_model(package, weight_format)
    assert status == "passed", report


def test_folder_package_from_a_given_image_and_refusal_to_overwrite(tiny_model, tmp_path):
    image = np.random.default_rng(0).integers(0, 4000, size=(100, 90)).astype(np.uint16)
    folder = export_bioimageio(tiny_model, tmp_path / "pkg", weight_formats=["pytorch_state_dict"],
                               test_image=image, test_size=60, name="my sEV model", authors=["A. Person"])
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    assert rdf["name"] == "my sEV model" and rdf["authors"] == [{"name": "A. Person"}]
    assert set(rdf["weights"]) == {"pytorch_state_dict"}
    raw = np.load(folder / "test_input.npy")
    np.testing.assert_array_equal(raw[0, 0], image[20:80, 15:75])  # the central 60 x 60
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_bioimageio(tiny_model, folder)
    with pytest.raises(ValueError, match="Did you mean 'onnx'"):
        export_bioimageio(tiny_model, tmp_path / "other", weight_formats=["onx"])


def test_missing_bioimageio_spec_names_the_extra(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    with pytest.raises(MissingExtraError, match=r'pip install "evseg\[bioimageio\]"'):
        export_bioimageio(tiny_model, tmp_path / "x.zip")
