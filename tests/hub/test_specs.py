"""Every spec file in models/ is well-formed; the parser refuses malformed specs."""

from __future__ import annotations

import re

import pytest
import yaml

from wildspace.hub.specs import SpecError, SpecRegistry, load_spec_file, parse_spec
from wildspace.settings import BUILTIN_SPECS_DIR

SPEC_FILES = sorted(BUILTIN_SPECS_DIR.glob("*.yaml"))


def test_there_are_specs_for_md_v5_and_v6():
    names = SpecRegistry([BUILTIN_SPECS_DIR]).names()
    for required in ("megadetector-v5a", "megadetector-v5b", "megadetector-v6-yolov9-c",
                     "megadetector-v6-yolov9-e", "megadetector-v6-yolov10-c",
                     "megadetector-v6-yolov10-e", "megadetector-v6-rtdetr-c"):
        assert required in names


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_spec_file(path):
    spec = load_spec_file(path)
    assert path.stem == spec.name
    w = spec.weights
    if w.hub:
        assert re.fullmatch(r"[0-9a-f]{40}", w.hub.revision)
    if w.sha256 is None:
        assert w.sha256_note, "a spec without sha256 must say why"
    else:
        assert re.fullmatch(r"[0-9a-f]{64}", w.sha256)
    if w.md5:
        assert re.fullmatch(r"[0-9a-f]{32}", w.md5)
    assert w.hub or w.url
    assert len(set(spec.labels)) == len(spec.labels)
    assert spec.labels or spec.task in ("embed", "backbone", "match"), "detectors and classifiers need labels"
    assert len(spec.card) > 40
    assert spec.license
    assert 0 < spec.conservative_threshold <= spec.typical_threshold < 1
    if spec.task == "detect":
        assert spec.labels == ("animal", "person", "vehicle")


def _good() -> dict:
    return yaml.safe_load((BUILTIN_SPECS_DIR / "megadetector-v5a.yaml").read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["weights"]["hub"].update(revision="main"), "40-hex commit"),
    (lambda d: d["weights"].update(sha256="abc"), "64 lowercase hex"),
    (lambda d: d.update(labels=["animal", "animal"]), "unique"),
    (lambda d: d.update(family="yolov99"), "not one of"),
    (lambda d: d.pop("card"), "card"),
    (lambda d: d["weights"].update(sha256=None), "sha256_note"),
    (lambda d: d["weights"].update(url="http://example.org/x.pt"), "https"),
    (lambda d: d.update(thresholds={"typical": 2}), "outside"),
])
def test_parser_refuses_bad_specs(mutate, message):
    data = _good()
    mutate(data)
    with pytest.raises(SpecError, match=message):
        parse_spec(data, "bad.yaml")


CLASSIFY_SPECS = [p for p in SPEC_FILES if load_spec_file(p).task == "classify"]


def test_there_are_specs_for_the_pytorch_wildlife_classifiers():
    names = SpecRegistry([BUILTIN_SPECS_DIR]).names(task="classify")
    assert {"ai4g-amazon-v2", "ai4g-snapshot-serengeti", "ai4g-opossum"} <= set(names)


@pytest.mark.parametrize("path", CLASSIFY_SPECS, ids=[p.stem for p in CLASSIFY_SPECS])
def test_classifier_spec_describes_a_buildable_network(path):
    """The preprocessing contract parses and the network it names builds with one output per
    label (or the stated num_outputs), without weights and without network access."""
    from wildspace.classify.models import create_network, info_from_spec, num_outputs

    info = info_from_spec(load_spec_file(path))
    net = create_network(info.family, info.arch, num_outputs(info))
    last = [m for m in net.modules() if hasattr(m, "out_features")][-1]
    assert last.out_features == num_outputs(info)
    if info.activation == "softmax":
        assert num_outputs(info) == len(info.labels)


EMBED_SPECS = [p for p in SPEC_FILES if load_spec_file(p).task == "embed"]


def test_there_are_specs_for_the_reid_embedders():
    names = SpecRegistry([BUILTIN_SPECS_DIR]).names(task="embed")
    assert {"megadescriptor-l-384", "miewid-msv3", "dinov2-base"} <= set(names)


@pytest.mark.parametrize("path", EMBED_SPECS, ids=[p.stem for p in EMBED_SPECS])
def test_embedder_spec_describes_a_buildable_network(path):
    """The architecture a re-ID spec names builds (on the meta device: no memory, no weights)."""
    import torch

    from wildspace.reid.embedders import _GemBnHead

    spec = load_spec_file(path)
    with torch.device("meta"):
        if spec.family == "timm" and spec.extra.get("head") == "gem-bn":
            net = _GemBnHead.build(spec.extra["arch"])
            assert net.bn.num_features > 0
        elif spec.family == "timm":
            import timm

            assert timm.create_model(spec.extra["arch"], pretrained=False, num_classes=0).num_features
        else:
            from transformers import AutoConfig, AutoModel

            cfg = dict(spec.extra["config"])
            AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))


BACKBONE_SPECS = [p for p in SPEC_FILES if load_spec_file(p).task == "backbone"]


def test_there_are_pinned_backbones_for_the_usual_architectures():
    from wildspace.train.init import backbone_for

    registry = SpecRegistry([BUILTIN_SPECS_DIR])
    for arch in ("resnet18", "resnet50", "efficientnet_b0", "convnext_tiny", "vit_small_patch16_224"):
        spec = backbone_for(arch, registry)
        assert spec is not None and spec.extra["pretrained"] == "imagenet", arch
        assert spec.weights.hub and spec.weights.hub.repo_id.startswith("timm/")
    assert backbone_for("test_resnet", registry) is None
    kinds = {load_spec_file(p).extra["pretrained"] for p in BACKBONE_SPECS}
    assert {"imagenet", "reid", "self-supervised"} <= kinds


@pytest.mark.parametrize("path", BACKBONE_SPECS, ids=[p.stem for p in BACKBONE_SPECS])
def test_backbone_spec_is_pinned_and_its_network_builds(path):
    """Every backbone pins a 40-hex Hub commit, states its preprocessing, and its timm
    architecture builds with the timm config's mean/std (meta device: no weights)."""
    import timm
    import torch

    spec = load_spec_file(path)
    assert spec.weights.hub and re.fullmatch(r"[0-9a-f]{40}", spec.weights.hub.revision)
    pre = spec.preprocessing
    assert pre is not None and pre.input_size == spec.input_size and pre.interpolation in ("bilinear", "bicubic")
    with torch.device("meta"):
        net = timm.create_model(spec.extra["arch"], pretrained=False, num_classes=0)
    assert net.num_features > 0
    if spec.weights.hub.repo_id.startswith("timm/"):  # the timm recipe's own normalisation
        cfg = timm.models.get_pretrained_cfg(spec.weights.hub.repo_id.split("/", 1)[1]).to_dict()
        assert tuple(cfg["mean"]) == pre.mean and tuple(cfg["std"]) == pre.std
        assert cfg["interpolation"] == pre.interpolation and cfg["input_size"][1] == pre.input_size


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("preprocessing"), "needs 'preprocessing'"),
    (lambda d: d["preprocessing"].update(mean=[0.5, 0.5]), "mean must be three numbers"),
    (lambda d: d["preprocessing"].update(std=[0.5, 0.0, 0.5]), "std must be three numbers > 0"),
    (lambda d: d["preprocessing"].update(interpolation="lanczos9"), "interpolation 'lanczos9'"),
    (lambda d: d["preprocessing"].update(input_size="224"), "positive integer"),
    (lambda d: d["preprocessing"].update(crop_pct=1.5), "crop_pct"),
    (lambda d: d["preprocessing"].update(colour="rgb"), "unknown keys colour"),
    (lambda d: d.pop("arch"), "needs 'arch'"),
    (lambda d: d.update(pretrained="yes"), "imagenet, reid, self-supervised"),
    (lambda d: d.update(family="torchvision"), "family timm"),
])
def test_parser_refuses_bad_backbone_specs(mutate, message):
    data = yaml.safe_load((BUILTIN_SPECS_DIR / "resnet18-imagenet.yaml").read_text())
    mutate(data)
    with pytest.raises(SpecError, match=message):
        parse_spec(data, "bad.yaml")


def test_preprocessing_round_trips_through_spec_to_dict():
    from wildspace.hub.specs import spec_to_dict

    spec = load_spec_file(BUILTIN_SPECS_DIR / "vit-small-imagenet.yaml")
    again = parse_spec(spec_to_dict(spec), "again")
    assert again.preprocessing == spec.preprocessing and again.extra["arch"] == "vit_small_patch16_224"
