"""Classifiers build from specs and verified local weights (timm, torchvision; safetensors
and Lightning-style checkpoints), with the spec's preprocessing contract."""

from __future__ import annotations

import numpy as np
import pytest

from tests.classify.factories import SERENGETI, install_classifier, make_classifier_file
from tests.factories import make_malicious_checkpoint, write_spec
from wildspace.hub.fetch import HashMismatch
from wildspace.hub.safe_pickle import UnsafeCheckpoint


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 7 * i, 50 + 5 * i, 3), dtype=np.uint8) for i in range(n)]


def _reference_probs(family, arch, n_out, seed, images, size, softmax=True):
    """The same random network built directly, fed the spec's preprocessing by hand."""
    import torch
    from PIL import Image

    from wildspace.classify.models import create_network

    torch.manual_seed(seed)
    net = create_network(family, arch, n_out).eval()
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = np.stack([(np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR)) / 255.0 - mean) / std
                  for im in images]).transpose(0, 3, 1, 2)
    with torch.no_grad():
        logits = net(torch.tensor(x, dtype=torch.float32))
    return (torch.softmax(logits, 1) if softmax else torch.sigmoid(logits)).numpy()


@pytest.mark.parametrize("name, family, arch, seed", [("tiny-timm", "timm", "test_resnet", 0),
                                                      ("tiny-tv", "torchvision", "resnet18", 1)])
def test_loads_through_hub_cache_and_matches_the_saved_network(classifiers, name, family, arch, seed):
    clf = classifiers.load(name)
    assert clf.info.labels == tuple(SERENGETI) and clf.info.arch == arch and clf.info.input_size == 64
    images = _images()
    probs = clf.predict(images, batch_size=2)
    assert probs.shape == (3, len(SERENGETI))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, _reference_probs(family, arch, 5, seed, images, 64), atol=1e-4)
    assert classifiers.load(name) is clf  # cached


def test_names_and_availability_by_kind(classifiers, specs_dir, hub_cache):
    assert {"tiny-timm", "tiny-tv", "ai4g-snapshot-serengeti"} <= set(classifiers.names("species"))
    assert classifiers.names("products") == []
    assert classifiers.available("species") == ["tiny-timm", "tiny-tv"]  # the shipped ones are not on disk
    write_spec(specs_dir, "absent-clf", "timm", "absent.safetensors", None, url="https://example.org/a.safetensors",
               task="classify", arch="test_resnet", labels=SERENGETI, input_size=64,
               thresholds={"typical": 0.5, "conservative": 0.3})
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    svc = ClassifierService(load_settings())
    assert "absent-clf" in svc.names() and "absent-clf" not in svc.available()
    with pytest.raises(KeyError, match="known classifiers: absent-clf, ai4g-amazon-v2, .*tiny-timm, tiny-tv"):
        svc.load("nope")


def test_pytorch_wildlife_style_checkpoint_with_key_map_and_lightning_metadata(specs_dir, hub_cache):
    """Pytorch-Wildlife publishes Lightning .ckpt files: tensors under state_dict, keys
    net.feature.* / net.classifier.*, hyper-parameters in an AttributeDict."""
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "pw-style", "torchvision", "resnet18", SERENGETI, 64, seed=3,
                       filename="PWStyle.ckpt", _prefix_map={"fc.": "net.classifier.", "": "net.feature."},
                       _lightning=True, state_dict_key="state_dict",
                       key_map={"net.feature.": "", "net.classifier.": "fc."})
    clf = ClassifierService(load_settings()).load("pw-style")
    images = _images(2)
    np.testing.assert_allclose(clf.predict(images), _reference_probs("torchvision", "resnet18", 5, 3, images, 64),
                               atol=1e-4)


def test_binary_sigmoid_classifier_reports_both_classes(specs_dir, hub_cache):
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "opossum-like", "timm", "test_resnet", ["Non-opossum", "Opossum"], 64,
                       seed=4, num_outputs=1, activation="sigmoid")
    probs = ClassifierService(load_settings()).load("opossum-like").predict(_images(2))
    p = _reference_probs("timm", "test_resnet", 1, 4, _images(2), 64, softmax=False)[:, 0]
    np.testing.assert_allclose(probs, np.stack([1 - p, p], 1), atol=1e-4)


def test_weights_that_do_not_fit_the_arch_are_a_clear_error(specs_dir, hub_cache):
    from wildspace.classify.models import build_classifier
    from wildspace.hub.specs import load_spec_file

    src = install_classifier(specs_dir, hub_cache, "wrong-arch", "timm", "test_resnet", SERENGETI, 64)
    spec = load_spec_file(write_spec(specs_dir, "wrong-arch", "timm", src.name, None, url="https://x.org/a",
                                     task="classify", arch="test_efficientnet", labels=SERENGETI, input_size=64))
    with pytest.raises(ValueError, match="do not fit timm 'test_efficientnet'"):
        build_classifier(spec, src)
    spec = load_spec_file(write_spec(specs_dir, "wrong-n", "timm", src.name, None, url="https://x.org/a",
                                     task="classify", arch="test_resnet", labels=SERENGETI[:3], input_size=64))
    with pytest.raises(ValueError, match="size mismatch"):
        build_classifier(spec, src)


def test_unknown_architecture_names_close_matches():
    from wildspace.classify.models import create_network

    with pytest.raises(ValueError, match="did you mean.*resnet50"):
        create_network("timm", "resnet5O", 3)
    with pytest.raises(ValueError, match="resnet18"):
        create_network("torchvision", "resnet-18", 3)


def test_hostile_checkpoint_is_refused_before_anything_runs(tmp_path):
    from wildspace.classify.weights import read_tensors

    marker = tmp_path / "pwned"
    bad = make_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafeCheckpoint, match="posix.system|os.system"):
        read_tensors(bad)
    assert not marker.exists()


def test_pickled_module_and_unknown_file_types_are_refused(tmp_path):
    import torch

    from wildspace.classify.models import create_network
    from wildspace.classify.weights import read_tensors

    torch.save(create_network("timm", "test_resnet", 2), tmp_path / "whole.pt")
    with pytest.raises(UnsafeCheckpoint, match="outside the allowlist"):
        read_tensors(tmp_path / "whole.pt")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported weight file type"):
        read_tensors(tmp_path / "w.onnx")
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(UnsafeCheckpoint, match="safetensors"):
        read_tensors(tmp_path / "junk.safetensors")


def test_tampered_weights_are_refused(classifiers, hub_cache):
    blob = next((hub_cache / "models--test-org--tiny-timm" / "blobs").iterdir())
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(HashMismatch):
        classifiers.load("tiny-timm")


def test_spec_fields_are_checked():
    import dataclasses

    from wildspace.classify.models import info_from_spec
    from wildspace.hub.specs import load_spec_file
    from wildspace.settings import BUILTIN_SPECS_DIR

    det = load_spec_file(BUILTIN_SPECS_DIR / "megadetector-v5a.yaml")
    with pytest.raises(ValueError, match="not a classifier"):
        info_from_spec(det)
    clf = dataclasses.replace(det, task="classify", family="timm", extra={"arch": "test_resnet", "kind": "toys"})
    with pytest.raises(ValueError, match="kind 'toys' is not one of species, products"):
        info_from_spec(clf)
    with pytest.raises(ValueError, match="needs 'arch'"):
        info_from_spec(dataclasses.replace(clf, extra={}))


def test_vit_from_timm_loads(specs_dir, hub_cache):
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "tiny-vit", "timm", "test_vit", SERENGETI, 160, seed=5)
    probs = ClassifierService(load_settings()).load("tiny-vit").predict(_images(1))
    np.testing.assert_allclose(probs, _reference_probs("timm", "test_vit", 5, 5, _images(1), 160), atol=1e-4)


def test_safetensors_written_for_training_round_trip(tmp_path):
    from wildspace.classify.weights import read_tensors

    p = make_classifier_file(tmp_path / "m.safetensors", "timm", "test_resnet", 4)
    state = read_tensors(p)
    assert state["fc.weight"].shape[0] == 4


@pytest.mark.parametrize("name, arch, n_out", [("ai4g-snapshot-serengeti", "resnet18", 10),
                                               ("ai4g-opossum", "resnet50", 1)])
def test_pytorch_wildlife_specs_load_a_checkpoint_of_their_layout(tmp_path, name, arch, n_out):
    """The shipped specs (URL, no published hash) read a file laid out as Pytorch-Wildlife's
    are, once imported by hand: its hash is recorded, a different file is refused later."""
    from wildspace.services.classifiers import ClassifierService
    from wildspace.services.detectors import DetectorService

    ckpt = make_classifier_file(tmp_path / "pw.ckpt", "torchvision", arch, n_out, seed=6, lightning=True,
                                prefix_map={"fc.": "net.classifier.", "": "net.feature."})
    service = DetectorService()
    service.import_model(ckpt, name)
    clf = ClassifierService.sharing(service).load(name)
    images = _images(2)
    ref = _reference_probs("torchvision", arch, n_out, 6, images, 224, softmax=n_out > 1)
    if n_out == 1:
        ref = np.concatenate([1 - ref, ref], axis=1)
    np.testing.assert_allclose(clf.predict(images), ref, atol=1e-4)
    other = make_classifier_file(tmp_path / "other.ckpt", "torchvision", arch, n_out, seed=7,
                                 prefix_map={"fc.": "net.classifier.", "": "net.feature."})
    with pytest.raises(HashMismatch):
        service.import_model(other, name)
