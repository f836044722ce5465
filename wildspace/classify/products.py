"""Wildlife-trade products: one classifier for all groups, optional localisation, Grad-CAM.

The taxonomy follows the seed project, where one model over every group generalised better
than one model per species. Labels are ``<group>_<class>`` (folder-friendly, so an image
folder per label is a training set) plus ``non_wildlife``.

A products classifier is a ``classify`` spec with ``kind: products`` whose labels are taken
from :data:`PRODUCT_LABELS` (a subset is fine). It may name a localiser
(``extra.localizer``): a torchvision Faster R-CNN spec (``task: detect``,
``family: torchvision``, ``kind: products-localizer``) that finds the items first; each item
is then classified on its crop. Without one (or when it finds nothing) the whole photo is
classified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from wildspace.classify.crops import crop_box, crop_window
from wildspace.classify.gradcam import grad_cam
from wildspace.classify.models import Classifier
from wildspace.classify.weights import read_tensors, rename_keys
from wildspace.errors import UsageError
from wildspace.hub.specs import ModelSpec

PRODUCT_TAXONOMY: dict[str, tuple[str, ...]] = {
    "elephant": ("ambiguous_mammoth", "antique_ivory", "elephant_skin", "ivory"),
    "pangolin": ("claw", "crafted_scale", "parched_scale", "raw_scale"),
    "tiger": ("bone_ambiguous", "claw", "fang_ambiguous", "other"),
}
NON_WILDLIFE = "non_wildlife"
PRODUCT_LABELS: tuple[str, ...] = tuple(
    f"{group}_{cls}" for group, classes in PRODUCT_TAXONOMY.items() for cls in classes) + (NON_WILDLIFE,)
LOCALIZER_KIND = "products-localizer"
Box = tuple[float, float, float, float]  # ``(x, y, w, h)`` normalised to the image


def product_group(label: str) -> str:
    """``elephant`` / ``pangolin`` / ``tiger`` / ``non_wildlife`` for a product label."""
    if label == NON_WILDLIFE:
        return NON_WILDLIFE
    group = label.split("_", 1)[0]
    if group not in PRODUCT_TAXONOMY or label not in PRODUCT_LABELS:
        raise UsageError(f"'{label}' is not a product label; choose from {', '.join(PRODUCT_LABELS)}")
    return group


def display_name(label: str) -> str:
    """``pangolin_raw_scale`` → ``pangolin: raw scale``."""
    if label not in PRODUCT_LABELS:
        return label
    group = product_group(label)
    return "not wildlife" if group == NON_WILDLIFE else f"{group}: {label[len(group) + 1:].replace('_', ' ')}"


def check_product_labels(labels: Sequence[str], where: str = "products model") -> None:
    """Raise ``ValueError`` unless every label belongs to the taxonomy (a subset is fine)."""
    bad = [x for x in labels if x not in PRODUCT_LABELS]
    if bad:
        raise UsageError(f"{where}: labels {', '.join(bad[:5])} are not in the product taxonomy; "
                         f"valid labels: {', '.join(PRODUCT_LABELS)}")


@dataclass(frozen=True)
class ProductRegion:
    """One item: where it is (whole image when the localiser is off or found nothing) and the
    classifier's best answers for it, best first."""

    bbox_xywh_norm: Box
    top: tuple[tuple[str, float], ...]
    localizer_conf: float | None = None


@dataclass(frozen=True)
class ProductAnswer:
    """The answer for one photo: items found, and a Grad-CAM heat-map over the whole photo
    (``(H, W)`` in [0, 1]) for the predicted class of the main item."""

    model: str
    regions: tuple[ProductRegion, ...]
    heatmap: np.ndarray
    explained: str

    @property
    def top(self) -> tuple[tuple[str, float], ...]:
        return self.regions[0].top


class ProductLocalizer:
    """A torchvision Faster R-CNN that finds products in a photo (class-agnostic use)."""

    def __init__(self, net, name: str, labels: tuple[str, ...], device: str = "cpu"):
        self.net = net.eval().to(device)
        self.name, self.labels, self.device = name, labels, device

    def find(self, image: np.ndarray, min_conf: float = 0.5, max_items: int = 5) -> list[tuple[Box, float]]:
        """``(bbox_xywh_norm, conf)`` of the items above ``min_conf``, most confident first."""
        import torch

        h, w = image.shape[:2]
        x = torch.from_numpy(image.transpose(2, 0, 1).copy()).float().div(255.0).to(self.device)
        with torch.inference_mode():
            (out,) = self.net([x])
        items: list[tuple[Box, float]] = []
        for (x1, y1, x2, y2), score in zip(out["boxes"].tolist(), out["scores"].tolist()):
            if score >= min_conf and x2 > x1 and y2 > y1:
                items.append(((x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h), float(score)))
        items.sort(key=lambda t: -t[1])
        return items[:max_items]


def build_localizer(spec: ModelSpec, path: str | Path, device: str = "cpu") -> ProductLocalizer:
    """A product localiser from a ``products-localizer`` spec and its verified weights.

    Raises:
        ValueError: not a localiser spec, unknown architecture, or weights that do not fit.
    """
    import torchvision

    if spec.extra.get("kind") != LOCALIZER_KIND or spec.family != "torchvision":
        raise UsageError(f"model '{spec.name}' is not a torchvision product localiser "
                         f"(family: torchvision, kind: {LOCALIZER_KIND})")
    arch = str(spec.extra.get("arch", ""))
    known = torchvision.models.list_models(module=torchvision.models.detection)
    if arch not in known:
        raise UsageError(f"model '{spec.name}': localiser arch '{arch}' is not one of {', '.join(known)}")
    net = create_localizer_network(arch, len(spec.labels), spec.input_size)
    state = read_tensors(path, spec.extra.get("state_dict_key"))
    if spec.extra.get("key_map"):
        state = rename_keys(state, dict(spec.extra["key_map"]))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(f"weights {Path(path).name} do not fit localiser '{arch}' with "
                         f"{len(spec.labels)} classes: {str(exc).splitlines()[0]}") from None
    return ProductLocalizer(net, spec.name, spec.labels, device)


def create_localizer_network(arch: str, n_labels: int, input_size: int):
    """An untrained torchvision detection network (``n_labels`` + background; never downloads)."""
    import torchvision

    return torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=n_labels + 1,
                                        min_size=input_size, max_size=input_size)


def answer_product(classifier: Classifier, image: np.ndarray, localizer: ProductLocalizer | None = None,
                   top_k: int = 5, min_item_conf: float = 0.5, margin: float = 0.05) -> ProductAnswer:
    """Classify the products in a photo and explain the main item's predicted class.

    Args:
        image: RGB ``uint8`` array ``(H, W, 3)``.
        localizer: finds items first (each classified on its crop with ``margin``).
        min_item_conf: localiser confidence below which a box is ignored.
    """
    h, w = image.shape[:2]
    boxes: list[tuple[Box, float | None]] = list(localizer.find(image, min_item_conf)) if localizer is not None else []
    if not boxes:
        boxes = [((0.0, 0.0, 1.0, 1.0), None)]
    crops = [image if conf is None else crop_box(image, bbox, margin) for bbox, conf in boxes]
    probs = classifier.predict(crops)
    labels = classifier.info.labels
    regions = []
    for (bbox, conf), p in zip(boxes, probs):
        order = np.argsort(-p, kind="stable")[:top_k]
        x, y, bw, bh = bbox
        regions.append(ProductRegion((float(x), float(y), float(bw), float(bh)),
                                     tuple((labels[i], float(p[i])) for i in order), conf))
    main_box, main_conf = boxes[0]
    cam, k = grad_cam(classifier, crops[0])
    heat = np.zeros((h, w), np.float32)
    if main_conf is None:
        heat = cam
    else:
        x0, y0, x1, y1 = crop_window((h, w), main_box, margin)
        heat[y0:y1, x0:x1] = cam
    return ProductAnswer(classifier.info.name, tuple(regions), heat, labels[k])

