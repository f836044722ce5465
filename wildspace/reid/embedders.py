"""Image embedders for individual re-identification, built from model specs.

Families (``family`` in the spec, settings under the spec's extra keys):

- ``timm``: ``arch`` is any timm architecture name (MegaDescriptor is a Swin transformer);
  the embedding is the pooled backbone output (``num_classes=0``). ``head: gem-bn`` builds the
  MiewID layout instead: backbone feature map → GeM pooling → BatchNorm1d (MiewID publishes
  its weights with custom *remote code* for transformers; wildspace never runs remote code, it
  builds the same layers itself and loads the weight tensors).
- ``transformers``: ``config`` is the model's ``config.json`` content written into the spec
  (DINOv2: ``model_type: dinov2``); the embedding is the pooled output (CLS token).

Weights are ``.safetensors`` (preferred) or a plain PyTorch state dict (``.bin``/``.pth``),
read with ``torch.load(weights_only=True)`` — tensors only, never arbitrary pickles.
Every embedding is L2-normalised, so inner product = cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from wildspace.errors import WildspaceError
from wildspace.hub.specs import ModelSpec

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBED_FAMILIES = ("timm", "transformers")


class EmbedderError(WildspaceError, ValueError):
    """A spec or weight file cannot make an embedder (the message says why)."""


def read_state_dict(path: Path) -> dict:
    """Tensors from ``.safetensors`` or a plain state dict (``weights_only=True``)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EmbedderError(f"{path.name}: not a plain tensor state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EmbedderError(f"{path.name}: expected a state dict, got {type(state).__name__}")
    return state


def _fit_keys(state: dict, wanted: set[str]) -> dict:
    """Strip a common wrapper prefix (``module.``, ``model.``) when that makes keys match."""
    if wanted & set(state):
        return state
    for prefix in ("module.", "model.", "backbone_model.", "miewid."):
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if wanted & set(stripped):
            return stripped
    return state


def load_weights(module, state: dict, name: str, ignore_prefixes: Sequence[str] = ()) -> None:
    """Load ``state`` into ``module``; every module tensor must be present (clear error)."""
    own = module.state_dict()
    state = _fit_keys(state, set(own))
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    missing = [k for k in own if k not in state]
    if missing:
        raise EmbedderError(f"weights for '{name}' do not fit its architecture: "
                            f"{len(missing)} tensors missing (e.g. {missing[:3]})")
    extra = [k for k in state if k not in own]
    if extra:
        raise EmbedderError(f"weights for '{name}' have {len(extra)} tensors the architecture "
                            f"does not (e.g. {extra[:3]}); wrong arch in the spec?")
    module.load_state_dict(state, strict=True)


class _GemBnHead:
    """Factory for the MiewID layout (kept out of module scope so torch loads lazily)."""

    @staticmethod
    def build(arch: str):
        import timm
        import torch
        from torch import nn

        class GeM(nn.Module):
            def __init__(self, p: float = 3.0, eps: float = 1e-6):
                super().__init__()
                self.p = nn.Parameter(torch.ones(1) * p)
                self.eps = eps

            def forward(self, x):
                return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)

        class GemBnNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = timm.create_model(arch, pretrained=False, num_classes=0,
                                                  global_pool="")
                self.pooling = GeM()
                self.bn = nn.BatchNorm1d(self.backbone.num_features)

            def forward(self, x):
                return self.bn(self.pooling(self.backbone.forward_features(x)))

        return GemBnNet()


def _build_module(spec: ModelSpec, weights: Path):
    extra = spec.extra
    if spec.family == "timm":
        import timm

        arch = extra.get("arch")
        if not arch:
            raise EmbedderError(f"spec '{spec.name}': family timm needs 'arch' (a timm model name)")
        try:
            if extra.get("head") == "gem-bn":
                module = _GemBnHead.build(arch)
                load_weights(module, read_state_dict(weights), spec.name,
                             ignore_prefixes=("final.", "fc.", "classifier."))
                return module
            module = timm.create_model(arch, pretrained=False, num_classes=0)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise EmbedderError(f"spec '{spec.name}': timm has no architecture '{arch}'") from None
            raise
        load_weights(module, read_state_dict(weights), spec.name,
                     ignore_prefixes=("head.fc.", "fc.", "classifier.", "head.weight", "head.bias"))
        return module
    if spec.family == "transformers":
        from transformers import AutoConfig, AutoModel

        config = dict(extra.get("config") or {})
        model_type = config.pop("model_type", None)
        if not model_type:
            raise EmbedderError(f"spec '{spec.name}': family transformers needs config.model_type")
        module = AutoModel.from_config(AutoConfig.for_model(model_type, **config))
        load_weights(module, read_state_dict(weights), spec.name)
        return module
    raise EmbedderError(f"spec '{spec.name}': family '{spec.family}' cannot embed; "
                        f"use one of {', '.join(EMBED_FAMILIES)}")


@dataclass
class Embedder:
    """A built embedding model: ``embed(images)`` → ``(n, dim)`` unit vectors."""

    name: str
    module: torch.nn.Module
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    family: str
    device: str = "cpu"
    batch_size: int = 16
    dim: int = 0  # set by build_embedder from a probe forward pass

    def _tensor(self, images: Sequence[np.ndarray]):
        import torch
        import torch.nn.functional as F

        batch = []
        for rgb in images:
            t = torch.from_numpy(np.require(rgb, np.uint8, ['C', 'W'])).permute(2, 0, 1).float().div_(255)
            t = F.interpolate(t[None], size=(self.input_size, self.input_size),
                              mode="bilinear", antialias=True, align_corners=False)[0]
            batch.append(t)
        x = torch.stack(batch)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed RGB ``uint8`` arrays ``(H, W, 3)``; returns float32 ``(n, dim)``, unit norm."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = self._tensor(images[start:start + self.batch_size])
                y = self.module(x)
                if self.family == "transformers":
                    pooled = getattr(y, "pooler_output", None)
                    y = pooled if pooled is not None else y.last_hidden_state[:, 0]
                out.append(y.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        v = np.concatenate(out).astype(np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def build_embedder(spec: ModelSpec, weights: Path, device: str = "cpu") -> Embedder:
    """Build the embedder a spec describes from a verified local weight file (no download)."""
    if spec.task != "embed":
        raise EmbedderError(f"model '{spec.name}' is a {spec.task} model, not an embedder")
    module = _build_module(spec, Path(weights))
    module.eval().to(device)
    extra = spec.extra
    emb = Embedder(name=spec.name, module=module, input_size=spec.input_size,
                   mean=tuple(extra.get("mean", IMAGENET_MEAN)),
                   std=tuple(extra.get("std", IMAGENET_STD)),
                   family=spec.family, device=device)
    emb.dim = int(emb.embed([np.zeros((spec.input_size, spec.input_size, 3), np.uint8)]).shape[1])
    return emb


def load_embedder(name: str, settings=None, device: str = "cpu") -> Embedder:
    """Find the spec by name, fetch its verified weights (cache / Hub / import), build it."""
    from wildspace.hub.fetch import ModelStore
    from wildspace.hub.specs import SpecRegistry
    from wildspace.settings import load_settings

    settings = settings or load_settings()
    spec = SpecRegistry(settings.spec_dirs).get(name)
    if spec.task != "embed":  # before any weights are fetched
        raise EmbedderError(f"model '{spec.name}' is a {spec.task} model, not an embedder")
    return build_embedder(spec, ModelStore(settings).fetch(spec), device)
