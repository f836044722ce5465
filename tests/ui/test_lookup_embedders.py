"""The lookup tab's embedder choice: weight-free local, the spec'd embedders and re-ID models
trained here (saved and installed the way ``train reid`` does), through the tab's own handlers."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

from tests.reid.synthetic import coat, photo
from wildspace.settings import load_settings

TOKEN = "t" * 32  # a browser token: the galleries it makes are private to it


def _install_tiny_embedder(tmp_path, name: str = "tiny-trained"):
    """A random ``test_resnet`` embedder exported and installed exactly as a re-ID training run
    does (``write_model_folder`` + ``install_model``)."""
    import timm
    import torch

    from wildspace.train.export import install_model, write_model_folder

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    fields = {"name": name, "task": "embed", "family": "timm", "version": "trained", "input_size": 32,
              "labels": [], "license": "unknown", "arch": "test_resnet",
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
              "training": {"loss": "triplet", "metric": "cosine", "epochs": 1, "initial_weights": {"kind": "random"}}}
    exported = write_model_folder(tmp_path / name, net, fields, f"# {name}\n\nA test embedder.")
    return install_model(exported, load_settings())


def _handlers(service, tmp_path):
    from wildspace.ui.lookup_tab import build_tab

    with gr.Blocks() as demo:
        build_tab(service, None, tmp_path / "out")
    return {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


def _photo(tmp_path, animal: int, seed: int) -> str:
    path = tmp_path / f"a{animal}-{seed}.jpg"
    Image.fromarray(photo(coat(animal), seed=seed)).save(path)
    return str(path)


def test_embedder_list_has_local_specs_and_trained_models(tmp_path):
    from wildspace.services.galleries import GalleryService
    from wildspace.ui.lookup_tab import LOCAL, embedder_choices

    service = GalleryService(load_settings(), background_calibration=False)
    before = dict((v, label) for label, v in embedder_choices(service))
    assert next(iter(before)) == LOCAL
    assert {"megadescriptor-l-384", "miewid-msv3", "dinov2-base"} <= set(before)
    assert "resnet50-imagenet" not in before  # classifiers and detectors are not embedders
    assert "model spec" in before["miewid-msv3"] and "fetched on first use" in before["miewid-msv3"]
    assert "tiny-trained" not in before
    _install_tiny_embedder(tmp_path)  # trained while the app runs: listed without a restart
    choices = service.embedders()
    mine = next(c for c in choices if c.name == "tiny-trained")
    assert mine.installed and mine.on_disk and choices[-1] is mine  # built-in specs first
    label = dict((v, label) for label, v in embedder_choices(service))["tiny-trained"]
    assert label == "tiny-trained (trained here)"


def test_enrol_creates_a_gallery_with_the_chosen_embedder(tmp_path):
    from wildspace.services.galleries import GalleryService
    from wildspace.ui.lookup_tab import LOCAL, NO_DETECTOR

    _install_tiny_embedder(tmp_path)
    service = GalleryService(load_settings(), background_calibration=False)
    fns = _handlers(service, tmp_path)
    enrol, lookup = fns["enrol_individual"], fns["lookup_individual"]

    msg = enrol("embedded", _photo(tmp_path, 11, 1), "Ada", "unknown", NO_DETECTOR, "tiny-trained", TOKEN)
    assert "embedder tiny-trained" in msg
    enrol("embedded", _photo(tmp_path, 11, 2), "Ada", "unknown", NO_DETECTOR, "tiny-trained", TOKEN)
    # later enrolments need no choice: the gallery keeps its embedder
    msg = enrol("embedded", _photo(tmp_path, 22, 1), "Bo", "unknown", NO_DETECTOR, LOCAL, TOKEN)
    assert "3 photos of 2 animals (embedder tiny-trained + local matching)" in msg
    g = service.open("embedded", f"browser:{TOKEN}")
    assert g.embedder == "tiny-trained" and g.embeddings is not None and g.embeddings.shape[0] == 3
    assert {"local", "embed", "fused"} <= set(g.calibrations)
    verdict, _crop, thumbs, rows = lookup("embedded", _photo(tmp_path, 11, 3), "unknown", NO_DETECTOR, "embed",
                                          TOKEN)
    assert "method: embed" in verdict or "new animal" in verdict
    assert len(rows) == 2 and {r[1] for r in rows} == {"Ada", "Bo"}

    with pytest.raises(gr.Error, match="uses embedder 'tiny-trained'; an embedder is chosen when a gallery"):
        enrol("embedded", _photo(tmp_path, 22, 2), "Bo", "unknown", NO_DETECTOR, "dinov2-base", TOKEN)
    with pytest.raises(gr.Error, match="unknown model 'no-such-embedder'"):
        enrol("other", _photo(tmp_path, 22, 2), "Bo", "unknown", NO_DETECTOR, "no-such-embedder", TOKEN)
    with pytest.raises(gr.Error, match="not an embedder"):
        enrol("other", _photo(tmp_path, 22, 2), "Bo", "unknown", NO_DETECTOR, "resnet50-imagenet", TOKEN)
    assert "other" not in service.names(f"browser:{TOKEN}")  # a refused creation writes nothing

    msg = enrol("plain", _photo(tmp_path, 22, 3), "Bo", "unknown", NO_DETECTOR, LOCAL, TOKEN)
    assert msg == "Enrolled **Bo** in gallery 'plain': 1 photos of 1 animals."
    plain = service.open("plain", f"browser:{TOKEN}")
    assert plain.embedder is None and plain.embeddings is None
    with pytest.raises(gr.Error, match="uses weight-free local matching only"):
        enrol("plain", _photo(tmp_path, 22, 4), "Bo", "unknown", NO_DETECTOR, "tiny-trained", TOKEN)
