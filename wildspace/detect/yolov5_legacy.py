"""Load legacy YOLOv5 checkpoints (MegaDetector v5) without the YOLOv5 package.

The pickle is first scanned (:mod:`wildspace.hub.safe_pickle`): only the YOLOv5 layer
classes, a few ``torch.nn`` layers and tensor data may appear. It is then loaded with
PyTorch's restricted ``weights_only`` unpickler, with each pickled name (``models.yolo.Model``,
``models.common.C3`` …) mapped onto our own definitions in
:mod:`wildspace.detect.yolov5_modules`. No other global can be resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from numpy._core import multiarray as _multiarray
from torch import nn

from wildspace.detect import yolov5_modules as ym
from wildspace.hub.safe_pickle import UnsafeCheckpoint, check_globals

YOLOV5_CLASSES: dict[str, type] = {
    "models.yolo.Model": ym.Model,
    "models.yolo.DetectionModel": ym.Model,
    "models.yolo.Detect": ym.Detect,
    "models.common.Conv": ym.Conv,
    "models.common.Focus": ym.Focus,
    "models.common.Bottleneck": ym.Bottleneck,
    "models.common.C3": ym.C3,
    "models.common.SPP": ym.SPP,
    "models.common.SPPF": ym.SPPF,
    "models.common.Concat": ym.Concat,
}
TORCH_LAYERS: dict[str, type] = {
    f"torch.nn.modules.{path}": cls for path, cls in {
        "activation.SiLU": nn.SiLU, "activation.LeakyReLU": nn.LeakyReLU,
        "activation.Hardswish": nn.Hardswish, "activation.ReLU": nn.ReLU,
        "batchnorm.BatchNorm2d": nn.BatchNorm2d, "container.Sequential": nn.Sequential,
        "container.ModuleList": nn.ModuleList, "conv.Conv2d": nn.Conv2d,
        "pooling.MaxPool2d": nn.MaxPool2d, "upsampling.Upsample": nn.Upsample,
        "linear.Identity": nn.Identity,
    }.items()
}
_NUMPY: dict[str, Callable[..., Any]] = {
    "numpy.core.multiarray.scalar": _multiarray.scalar,
    "numpy._core.multiarray.scalar": _multiarray.scalar,
    "numpy.core.multiarray._reconstruct": _multiarray._reconstruct,
    "numpy._core.multiarray._reconstruct": _multiarray._reconstruct,
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
}


def is_yolov5_checkpoint(names: set[str]) -> bool:
    return any(n.startswith("models.yolo.") for n in names)


def _resolve(name: str) -> Callable[..., Any] | None:
    if name in YOLOV5_CLASSES:
        return YOLOV5_CLASSES[name]
    if name in TORCH_LAYERS:
        return TORCH_LAYERS[name]
    if name in _NUMPY:
        return _NUMPY[name]
    if name.startswith("numpy.dtypes."):
        return getattr(np.dtypes, name.rsplit(".", 1)[1])
    return None


def load_yolov5_checkpoint(path: str | Path) -> tuple[ym.Model, tuple[str, ...]]:
    """Load a legacy checkpoint as a fused float32 eval-mode model plus its class names.

    Raises:
        UnsafeCheckpoint: the file references anything outside the allowlist, or is not a
            YOLOv5 detection checkpoint.
    """
    path = Path(path)
    names = check_globals(path, lambda n: n in YOLOV5_CLASSES or n in TORCH_LAYERS)
    if not is_yolov5_checkpoint(names):
        raise UnsafeCheckpoint(f"{path.name}: not a YOLOv5 checkpoint (no models.yolo classes)")
    mapping: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        (obj, n) for n in sorted(names) if (obj := _resolve(n)) is not None]
    with torch.serialization.safe_globals(mapping):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else ckpt
    if not isinstance(model, ym.Model):
        raise UnsafeCheckpoint(f"{path.name}: no YOLOv5 model found in the checkpoint")
    model = model.float()
    for m in model.modules():
        if isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None  # files written by torch < 1.11
    ym.fuse(model).eval()
    labels = model.names
    if isinstance(labels, dict):
        labels = [labels[k] for k in sorted(labels)]
    return model, tuple(str(x) for x in labels)


def save_yolov5_checkpoint(model: ym.Model, path: str | Path, extra: dict | None = None) -> None:
    """Write ``model`` as a legacy checkpoint, pickled under YOLOv5's module paths
    (``models.yolo.Model`` …) exactly as MegaDetector v5 files are, in fp16."""
    import copy
    import sys
    import types

    reverse = {cls: name for name, cls in YOLOV5_CLASSES.items() if name != "models.yolo.DetectionModel"}
    saved = {cls: (cls.__module__, cls.__qualname__) for cls in reverse}
    fake = {m: types.ModuleType(m) for m in ("models", "models.yolo", "models.common")}
    previous = {m: sys.modules.get(m) for m in fake}
    try:
        for cls, full in reverse.items():
            module, name = full.rsplit(".", 1)
            cls.__module__, cls.__qualname__ = module, name
            setattr(fake[module], name, cls)
        sys.modules.update(fake)
        ckpt = {"epoch": -1, "best_fitness": None, "model": copy.deepcopy(model).half(),
                "ema": None, "updates": None, "optimizer": None, **(extra or {})}
        torch.save(ckpt, path)
    finally:
        for cls, (module, qual) in saved.items():
            cls.__module__, cls.__qualname__ = module, qual
        for m, old in previous.items():
            if old is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = old
