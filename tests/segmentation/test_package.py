"""bioimage.io model packages: written, validated and tested by bioimage.io's own libraries
offline, loaded only after every sha256 matches, never unpickled."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from curation.errors import ModelIntegrityError, ModelPackageError
from curation.segmentation.card import DataSource, ModelCard, now_iso
from curation.segmentation.inference import Predictor, plan_inference, predict_array
from curation.segmentation.package import (
    load_model,
    read_card,
    sha256_file,
    bioimageio_test,
    validate_package,
    write_package,
)
from curation.segmentation.train import train

from .conftest import ANNOTATED, tiny

REPO = Path(__file__).resolve().parents[2]
VS = (8.0, 8.0, 8.0)
SOURCE = DataSource(archive="dataset-id-123", archive_commit="a" * 40, acquisition="phantom",
                    acquisition_commit="b" * 40, image_tree_checksum="md5:" + "c" * 32, label_layer="envelope",
                    label_version=2, label_commit="d" * 40, label_tree_checksum="md5:" + "e" * 32)


@pytest.fixture(scope="module")
def result(phantom, sparse_envelope):
    return train(tiny("nuclear-envelope-tap"), phantom[0], sparse_envelope, ANNOTATED, VS)


@pytest.fixture(scope="module")
def package(result, tmp_path_factory, phantom):
    path = tmp_path_factory.mktemp("models") / "envelope"
    written = write_package(path, result, name="envelope", source=SOURCE, annotated_slices=ANNOTATED,
                            shape=phantom[0].shape, started=now_iso(), creator="Ada Curator <ada@example.org>",
                            version=1)
    return written.path


@pytest.fixture()
def copy(package, tmp_path):
    target = tmp_path / "pkg"
    shutil.copytree(package, target)
    return target


@pytest.fixture()
def offline(monkeypatch):
    """Any network connection fails (bioimage.io must work offline)."""
    def refuse(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_package_files(package):
    names = sorted(p.name for p in package.iterdir())
    assert names == ["README.md", "cover.png", "rdf.yaml", "test_input.npy", "test_output.npy", "unet_v1.py",
                     "weights.pt"]
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    w = rdf["weights"]["pytorch_state_dict"]
    assert w["sha256"] == sha256_file(package / "weights.pt")
    assert w["architecture"]["sha256"] == sha256_file(package / "unet_v1.py")
    assert "github_user" not in json.dumps(rdf["authors"]) and rdf["authors"] == [{"name": "Ada Curator"}]
    assert "## Validation" in (package / "README.md").read_text()
    source = (package / "unet_v1.py").read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "torch"}


def test_bioimageio_validates_and_tests_the_package_offline(package, offline):
    assert validate_package(package) == []
    passed, problems = bioimageio_test(package)
    assert passed, problems


def test_card_records_the_training(package, result):
    _, card = read_card(package)
    assert isinstance(card, ModelCard) and card.version == 1 and card.name == "envelope"
    assert card.training_data.source == SOURCE
    assert card.training_data.source.label_address == "envelope@v2"
    assert card.pipeline == result.pipeline
    assert card.training.seed == 0 and card.training.threads == 1 and card.training.iterations == 6
    assert card.training.plan == [(0, 6)]
    assert card.validation.slices == [21] and card.validation.selection == "farthest"
    assert [e.dice for e in card.validation.epochs] == [e.dice for e in result.history]
    assert card.training_data.normalization_values == pytest.approx(result.normalization)
    assert card.software.torch == torch.__version__ and card.software.bioimageio_spec
    assert card.files.weights_sha256 == sha256_file(package / "weights.pt")
    schema = json.loads((REPO / "schemas" / "model_card.schema.json").read_text())
    doc = yaml.safe_load((package / "rdf.yaml").read_text())["config"]["curation"]
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)) == []


def test_loaded_model_predicts_as_the_trained_one(package, result, phantom):
    loaded = load_model(package)
    assert loaded.weights_sha256 == sha256_file(package / "weights.pt")
    image = phantom[0][:6, :48, :48]
    plan = plan_inference(loaded.pipeline, image.shape, VS, normalization=result.normalization)
    a = predict_array(plan, loaded.predictor(), image)
    b = predict_array(plan, Predictor(result.model), image)
    np.testing.assert_array_equal(a[0], b[0])
    assert loaded.init()["parent"] == {"name": "envelope", "version": 1, "weights_sha256": loaded.weights_sha256}


def test_never_overwritten(package, result, phantom):
    with pytest.raises(ModelPackageError, match="never overwritten"):
        write_package(package, result, name="envelope", source=SOURCE, annotated_slices=ANNOTATED,
                      shape=phantom[0].shape, started=now_iso())


def _edit_rdf(root: Path, change) -> None:
    rdf = yaml.safe_load((root / "rdf.yaml").read_text())
    change(rdf)
    (root / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))


def test_tampered_weights_are_refused(copy):
    data = bytearray((copy / "weights.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "weights.pt").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match its recorded sha256"):
        load_model(copy)


def test_a_card_that_does_not_match_its_files_is_refused(copy):
    def change(rdf):
        rdf["config"]["curation"]["files"]["weights_sha256"] = "0" * 64
    _edit_rdf(copy, change)
    with pytest.raises(ModelIntegrityError, match="RDF and the model card record different sha256"):
        load_model(copy)


def test_architecture_kwargs_must_match_the_card(copy):
    def change(rdf):
        rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["width"] = 64
    _edit_rdf(copy, change)
    with pytest.raises(ModelIntegrityError, match="differs from the card"):
        load_model(copy)


def test_a_changed_architecture_file_is_never_run(copy, tmp_path):
    marker = tmp_path / "ran"
    (copy / "unet_v1.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + (copy / "unet_v1.py").read_text())
    sha = sha256_file(copy / "unet_v1.py")

    def change(rdf):
        rdf["weights"]["pytorch_state_dict"]["architecture"]["sha256"] = sha
        rdf["config"]["curation"]["files"]["architecture_sha256"] = sha
    _edit_rdf(copy, change)
    with pytest.raises(ModelIntegrityError, match="not one curation knows"):
        load_model(copy)
    assert not marker.exists()


class _Payload:
    """Pickles as a call to os.mkdir: loading it without weights_only would run it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_malicious_pickle_is_not_run(copy, tmp_path):
    marker = tmp_path / "pwned"
    state = torch.load(copy / "weights.pt", weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, copy / "weights.pt")
    sha = sha256_file(copy / "weights.pt")

    def change(rdf):  # the attacker also rewrote every recorded sha256
        rdf["weights"]["pytorch_state_dict"]["sha256"] = sha
        rdf["config"]["curation"]["files"]["weights_sha256"] = sha
    _edit_rdf(copy, change)
    with pytest.raises(ModelIntegrityError, match="holds more than tensors"):
        load_model(copy)
    assert not marker.exists()
    torch.load(copy / "weights.pt", weights_only=False)  # the payload is live: unpickling runs it
    assert marker.is_dir()


def test_files_outside_the_package_are_refused(copy):
    def change(rdf):
        rdf["weights"]["pytorch_state_dict"]["source"] = "../elsewhere/weights.pt"
    _edit_rdf(copy, change)
    with pytest.raises(ModelIntegrityError, match="outside the package"):
        load_model(copy)


def test_not_a_curation_package(copy):
    def change(rdf):
        del rdf["config"]["curation"]
    _edit_rdf(copy, change)
    with pytest.raises(ModelPackageError, match="no curation model card"):
        load_model(copy)
    (copy / "rdf.yaml").write_text("type: dataset\nformat_version: 0.3.0\n")
    with pytest.raises(ModelPackageError, match="not a bioimage.io model"):
        load_model(copy)


def test_a_fine_tuned_model_names_its_parent(package, phantom, sparse_envelope, tmp_path):
    parent = load_model(package)
    p = tiny("nuclear-envelope-tap", **{"training.iterations": 2})
    child = train(p, phantom[0], sparse_envelope, ANNOTATED, VS, init=parent.init())
    written = write_package(tmp_path / "child", child, name="envelope", source=SOURCE, annotated_slices=ANNOTATED,
                            shape=phantom[0].shape, started=now_iso(), version=2)
    card = written.card
    assert card.parent is not None and card.parent.address == "envelope@v1"
    assert card.parent.weights_sha256 == parent.weights_sha256
    assert "fine-tuned from `envelope@v1`" in (written.path / "README.md").read_text()
    assert load_model(written.path).card.parent == card.parent
