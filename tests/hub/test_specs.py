"""Every spec file in models/ is well-formed; the parser refuses malformed specs."""

from __future__ import annotations

import re

import pytest
import yaml

from wildspace.config import BUILTIN_SPECS_DIR
from wildspace.hub.specs import SpecError, SpecRegistry, load_spec_file, parse_spec

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
    assert spec.labels or spec.task == "embed", "detectors and classifiers need labels"
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
