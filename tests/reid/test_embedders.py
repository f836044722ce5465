"""Embedders through the production path: spec file -> local Hub cache -> verified weights ->
built model. Tiny random-weight models of the real families (timm backbone as MegaDescriptor
is, the MiewID GeM+BN layout, a transformers DINOv2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.factories import seed_hub_cache, sha256, write_spec
from tests.reid.synthetic import coat, photo
from wildspace.hub.specs import load_spec_file
from wildspace.reid.embedders import EmbedderError, _GemBnHead, build_embedder, load_embedder
from wildspace.services.galleries import GalleryService
from wildspace.settings import load_settings


def _save(state: dict, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _register(specs_dir, hub_cache, tmp_path, name, family, state, input_size, **extra):
    f = _save(state, tmp_path / f"{name}.safetensors")
    rev = seed_hub_cache(hub_cache, f"org/{name}", "model.safetensors", f)
    write_spec(specs_dir, name, family, "model.safetensors", sha256(f),
               hub={"repo_id": f"org/{name}", "revision": rev, "path_in_repo": "model.safetensors"},
               labels=[], input_size=input_size, task="embed", **extra)


@pytest.fixture
def embed_specs(specs_dir, hub_cache, tmp_path):
    import timm
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    vit = timm.create_model("test_vit", pretrained=False, num_classes=0)
    _register(specs_dir, hub_cache, tmp_path, "tiny-megadescriptor", "timm", vit.state_dict(), 64,
              arch="test_vit")
    miew = _GemBnHead.build("test_efficientnet")
    state = dict(miew.state_dict())
    state["final.weight"] = torch.zeros(10, miew.bn.num_features)  # ArcFace head, unused
    _register(specs_dir, hub_cache, tmp_path, "tiny-miewid", "timm", state, 64,
              arch="test_efficientnet", head="gem-bn")
    cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               image_size=56, patch_size=14)
    dino = Dinov2Model(Dinov2Config(**cfg))
    _register(specs_dir, hub_cache, tmp_path, "tiny-dinov2", "transformers", dino.state_dict(), 56,
              config={"model_type": "dinov2", **cfg})
    return {"vit": vit, "miew": miew, "dino": dino}


@pytest.mark.parametrize("name,dim", [("tiny-megadescriptor", 64), ("tiny-miewid", 256),
                                      ("tiny-dinov2", 32)])
def test_embedders_load_from_the_hub_cache(embed_specs, name, dim):
    emb = load_embedder(name, load_settings())
    images = [photo(coat(1), 1), photo(coat(2), 2)]
    v = emb.embed(images)
    assert v.shape == (2, dim) and emb.dim == dim
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(emb.embed(images[:1]), v[:1], atol=1e-5)  # deterministic, batch-free


def test_timm_embedding_equals_the_reference_forward(embed_specs):
    emb = load_embedder("tiny-megadescriptor", load_settings())
    img = photo(coat(3), 3)
    x = emb._tensor([img])
    with torch.inference_mode():
        ref = embed_specs["vit"].eval()(x).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.allclose(emb.embed([img]), ref, atol=1e-5)


def test_wrong_architecture_is_a_clear_error(embed_specs, specs_dir):
    spec = load_spec_file(specs_dir / "tiny-miewid.yaml")
    weights = load_settings()
    from wildspace.hub.fetch import ModelStore

    path = ModelStore(weights).fetch(spec)
    bad = spec.__class__(**{**spec.__dict__, "extra": {"arch": "test_vit"}})
    with pytest.raises(EmbedderError, match="do not fit"):
        build_embedder(bad, path)
    bad = spec.__class__(**{**spec.__dict__, "extra": {"arch": "no_such_net"}})
    with pytest.raises(EmbedderError, match="no architecture"):
        build_embedder(bad, path)


def test_gallery_with_embedder_supports_embed_and_fused(embed_specs, synthetic_set):
    images, table = synthetic_set
    svc = GalleryService(load_settings())
    _, g, _ = svc.build("emb", images, table, model="tiny-miewid")
    assert g.embeddings.shape == (9, 256) and g.embedder == "tiny-miewid"
    assert set(g.calibrations) == {"local", "embed", "fused"}
    # an exact copy of a gallery photo has cosine 1 with it: embed must find that animal
    same = g.image(4)
    for method in ("embed", "fused"):
        r = svc.lookup("emb", same, method=method).result
        assert r.matches[0].identity == g.records[4].identity
    # the fused path re-ranks with local features: a new photo of 'bo' is found
    r = svc.lookup("emb", photo(coat(1001), seed=999), method="fused").result
    assert r.matches[0].identity == "bo"
    g2 = svc.enrol("emb", photo(coat(77), 1), "newbie")
    assert g2.embeddings.shape == (10, 256)
