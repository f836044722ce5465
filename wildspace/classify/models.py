"""Build an image classifier from a model spec and a local, verified weight file.

Families: ``timm`` (any architecture ``timm.create_model`` knows, by name) and
``torchvision`` (any classification model ``torchvision.models.get_model`` knows, e.g.
``resnet18``, ``resnet50``). What the network expects comes from the spec, beside the
weights' location (the timm idea of a pretrained config):

- ``input_size``: side in px of the square the image is resized to (no letterbox);
- ``labels``: class names in output order;
- ``extra.arch``: the architecture name (required);
- ``extra.mean`` / ``extra.std``: RGB normalisation (default ImageNet's);
- ``extra.activation``: ``softmax`` (default) or ``sigmoid``; one sigmoid output with two
  labels is a binary classifier (``[1 - p, p]``);
- ``extra.num_outputs``: the network's output size when it differs from ``len(labels)``;
- ``extra.state_dict_key`` / ``extra.key_map``: where the tensors sit in a checkpoint and
  key prefixes to rename (e.g. ``{"net.feature.": "", "net.classifier.": "fc."}``);
- ``extra.cam_layer``: the module whose output Grad-CAM explains (torchvision; default
  ``layer4`` or ``features``);
- ``extra.kind``: ``species`` (default) or ``products``.

Nothing here downloads: ``build_classifier`` gets a path the model store has verified.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wildspace.classify.weights import read_tensors, rename_keys
from wildspace.errors import UsageError
from wildspace.hub.specs import ModelSpec

CLASSIFIER_FAMILIES = ("timm", "torchvision")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ACTIVATIONS = ("softmax", "sigmoid")
KINDS = ("species", "products")


@dataclass(frozen=True)
class ClassifierInfo:
    """What a built classifier is and what it expects (from its spec)."""

    name: str
    family: str
    arch: str
    labels: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    activation: str = "softmax"
    kind: str = "species"
    typical_threshold: float = 0.5
    version: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def categories(self) -> dict[str, str]:
        """MegaDetector ``classification_categories``: ``{"0": labels[0], …}``."""
        return {str(i): label for i, label in enumerate(self.labels)}


def info_from_spec(spec: ModelSpec) -> ClassifierInfo:
    """Read and check the classifier fields of a spec.

    Raises:
        ValueError: naming the spec and the bad field (and the valid choices).
    """
    where = f"model '{spec.name}'"
    if spec.task != "classify":
        raise UsageError(f"{where} is a '{spec.task}' model, not a classifier")
    if spec.family not in CLASSIFIER_FAMILIES:
        raise UsageError(f"{where}: family '{spec.family}' cannot classify; choose one of "
                         f"{', '.join(CLASSIFIER_FAMILIES)}")
    x = spec.extra
    arch = x.get("arch")
    if not arch:
        raise UsageError(f"{where}: a classifier spec needs 'arch' (e.g. resnet50)")
    activation = str(x.get("activation", "softmax"))
    if activation not in ACTIVATIONS:
        raise UsageError(f"{where}: activation '{activation}' is not one of {', '.join(ACTIVATIONS)}")
    kind = str(x.get("kind", "species"))
    if kind not in KINDS:
        raise UsageError(f"{where}: kind '{kind}' is not one of {', '.join(KINDS)}")
    mean, std = tuple(x.get("mean", IMAGENET_MEAN)), tuple(x.get("std", IMAGENET_STD))
    if len(mean) != 3 or len(std) != 3 or any(float(s) <= 0 for s in std):
        raise UsageError(f"{where}: mean and std must be three numbers each (std > 0)")
    return ClassifierInfo(
        name=spec.name, family=spec.family, arch=str(arch), labels=spec.labels,
        input_size=spec.input_size, mean=_three(mean), std=_three(std),
        activation=activation, kind=kind, typical_threshold=spec.typical_threshold,
        version=spec.version, extra=dict(x),
    )


def _three(values: tuple) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)  # the caller checked: three numbers
    return a, b, c


def num_outputs(info: ClassifierInfo) -> int:
    return int(info.extra.get("num_outputs", len(info.labels)))


def create_network(family: str, arch: str, n_outputs: int):
    """An untrained network of ``arch`` with ``n_outputs`` outputs (never downloads).

    Raises:
        ValueError: unknown family or architecture (with close matches).
    """
    if family == "timm":
        import timm

        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=5)
            raise UsageError(f"unknown timm architecture '{arch}'"
                             + (f"; did you mean {', '.join(close)}?" if close else
                                "; see timm.list_models()"))
        return timm.create_model(arch, pretrained=False, num_classes=n_outputs)
    if family == "torchvision":
        import torchvision

        known = torchvision.models.list_models(module=torchvision.models)
        if arch not in known:
            close = difflib.get_close_matches(arch, known, n=5)
            raise UsageError(f"unknown torchvision classification architecture '{arch}'; "
                             f"choose one of: {', '.join(close or known[:20])}")
        return torchvision.models.get_model(arch, weights=None, num_classes=n_outputs)
    raise UsageError(f"unknown classifier family '{family}'; choose one of {', '.join(CLASSIFIER_FAMILIES)}")


class Classifier:
    """A built classifier: preprocessing, batched probabilities, a split forward for Grad-CAM.

    Images are RGB ``uint8`` arrays ``(H, W, 3)`` of any size; probabilities are
    ``(N, len(labels))`` float arrays.
    """

    def __init__(self, net, info: ClassifierInfo, device: str = "cpu"):
        self.net = net.eval().to(device)
        self.info = info
        self.device = device
        self._cam_module = _cam_module(net, info) if info.family == "torchvision" else None

    # -- preprocessing ------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]):
        """Resize each image to ``input_size`` square (bilinear), scale to [0, 1], normalise."""
        import torch
        from PIL import Image

        s = self.info.input_size
        batch = np.stack([np.asarray(Image.fromarray(_rgb(im)).resize((s, s), Image.Resampling.BILINEAR))
                          for im in images]).astype(np.float32) / 255.0
        mean = np.asarray(self.info.mean, np.float32)
        std = np.asarray(self.info.std, np.float32)
        batch = (batch - mean) / std
        return torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()).to(self.device)

    # -- inference ----------------------------------------------------------------------
    def probabilities_from_logits(self, logits):
        import torch

        if self.info.activation == "softmax":
            return torch.softmax(logits, dim=1)
        p = torch.sigmoid(logits)
        if p.shape[1] == 1 and len(self.info.labels) == 2:
            return torch.cat([1 - p, p], dim=1)
        return p

    def score(self, logits, index: int):
        """The scalar per image that Grad-CAM differentiates for class ``index``."""
        if self.info.activation == "sigmoid" and logits.shape[1] == 1:
            return logits[:, 0] if index == 1 else -logits[:, 0]
        return logits[:, index]

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Class probabilities for each image, ``(N, len(labels))``."""
        import torch

        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                logits = self.net(self.preprocess(images[i:i + batch_size]))
                out.append(self.probabilities_from_logits(logits).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.info.labels)), np.float32)

    def split_forward(self, x):
        """``(feature map, logits)`` with the feature map in the autograd graph.

        The feature map is ``(N, C, h, w)`` for CNNs and ``(N, tokens, C)`` for
        transformers (timm); Grad-CAM weights it by the gradient of a class score.
        """
        if self.info.family == "timm":
            fmap = self.net.forward_features(x)
            return fmap, self.net.forward_head(fmap)
        captured = []
        handle = self._cam_module.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            logits = self.net(x)
        finally:
            handle.remove()
        return captured[-1], logits

    @property
    def prefix_tokens(self) -> int:
        return int(getattr(self.net, "num_prefix_tokens", 0))


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UsageError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise UsageError(f"empty image {image.shape}")
    return np.ascontiguousarray(image)


def _cam_module(net, info: ClassifierInfo):
    modules = dict(net.named_modules())
    name = info.extra.get("cam_layer") or next((n for n in ("layer4", "features", "trunk_output")
                                                if n in modules), None)
    if name is None or name not in modules:
        raise UsageError(f"model '{info.name}': set extra 'cam_layer' to the module Grad-CAM "
                         f"explains (e.g. one of {', '.join(list(modules)[1:8])} …)")
    return modules[name]


def load_weights(net, path: str | Path, info: ClassifierInfo) -> None:
    """Copy the file's tensors into ``net`` (strict: every key must match).

    Raises:
        ValueError: the weights do not fit the architecture (missing/unexpected keys or
            shapes), naming a few and the spec fields that usually fix it.
    """
    state = read_tensors(path, info.extra.get("state_dict_key"))
    if info.extra.get("key_map"):
        state = rename_keys(state, dict(info.extra["key_map"]))
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise UsageError(f"weights {Path(path).name} do not fit {info.family} '{info.arch}' with "
                         f"{num_outputs(info)} outputs: {_first_line(exc)}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise UsageError(
            f"weights {Path(path).name} do not fit {info.family} '{info.arch}': "
            f"{len(missing)} missing keys ({', '.join(missing[:3])}), {len(unexpected)} unexpected "
            f"({', '.join(unexpected[:3])}); check 'arch', 'state_dict_key' and 'key_map'")


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
    return "; ".join(lines[:2]) or str(exc).splitlines()[0]


def build_classifier(spec: ModelSpec, path: str | Path, device: str = "cpu") -> Classifier:
    """A ready classifier for ``spec`` from the verified file at ``path`` (never downloads)."""
    info = info_from_spec(spec)
    net = create_network(info.family, info.arch, num_outputs(info))
    load_weights(net, path, info)
    return Classifier(net.float(), info, device=device)


def save_classifier_weights(net, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``net``'s weights as safetensors (what training and tests produce)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path
