"""Detector for ultralytics checkpoints (MegaDetector v6 YOLOv9/YOLOv10/RT-DETR, MDv1000
larch/sorrel, DeepFaune).

Ultralytics unpickles its checkpoints without a restricted unpickler. We therefore scan every
file first (:mod:`wildspace.hub.safe_pickle`) and refuse anything that names a global outside
ultralytics' network modules, ``torch.nn`` layers and tensor data; only then is the file
handed to ultralytics. Only local paths are ever passed (never asset names, which download).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from wildspace.detect.base import Prepared, xyxy_to_detections
from wildspace.hub.safe_pickle import UnsafeCheckpoint, check_globals
from wildspace.types import Detection, DetectorInfo

ALLOWED_PREFIXES = (
    "ultralytics.nn.modules.",
    "ultralytics.utils.loss.",  # criterion objects some trainers leave on the model
    "ultralytics.utils.tal.",
    "torch.nn.modules.",
)
ALLOWED_NAMES = frozenset({
    "ultralytics.nn.tasks.DetectionModel", "ultralytics.nn.tasks.RTDETRDetectionModel",
    "ultralytics.nn.tasks.YOLOv10DetectionModel", "ultralytics.nn.tasks.BaseModel",
    "ultralytics.utils.IterableSimpleNamespace", "pathlib.PosixPath", "pathlib.WindowsPath",
    "torch.nn.parameter.Parameter",
})


def is_allowed_ultralytics_global(name: str) -> bool:
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def is_ultralytics_checkpoint(names: set[str]) -> bool:
    return any(n.startswith("ultralytics.nn.tasks.") for n in names)


def _configure_ultralytics() -> None:
    """Keep ultralytics offline and its settings file out of the user's home."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if "YOLO_CONFIG_DIR" not in os.environ:
        from wildspace.config import load_settings

        os.environ["YOLO_CONFIG_DIR"] = str(load_settings().home / "ultralytics")


def check_ultralytics_checkpoint(path: str | Path) -> set[str]:
    """Refuse a file that is not a clean ultralytics detection checkpoint; return its globals."""
    names = check_globals(path, is_allowed_ultralytics_global)
    if not is_ultralytics_checkpoint(names):
        raise UnsafeCheckpoint(f"{Path(path).name}: not an ultralytics detection checkpoint")
    return names


def _pt_alias(path: Path) -> Path:
    """A ``.pt``-named symlink to ``path`` (ultralytics picks its backend by suffix)."""
    import hashlib
    import tempfile

    alias_dir = Path(tempfile.gettempdir()) / "wildspace-pt-alias"
    alias_dir.mkdir(exist_ok=True)
    alias = alias_dir / (hashlib.sha1(str(path).encode()).hexdigest() + ".pt")
    if not alias.is_symlink():
        alias.symlink_to(path)
    return alias


class UltralyticsDetector:
    """Runs a verified ultralytics checkpoint through ultralytics' own predictor."""

    def __init__(self, weights: str | Path, info: DetectorInfo, device: str = "cpu"):
        weights = Path(weights).absolute()  # keep the snapshot name: ultralytics wants ".pt"
        names = check_ultralytics_checkpoint(weights)
        if weights.suffix != ".pt":
            weights = _pt_alias(weights)
        _configure_ultralytics()
        from ultralytics import RTDETR, YOLO

        if "ultralytics.nn.tasks.RTDETRDetectionModel" in names:
            self.model = RTDETR(str(weights))
        else:
            self.model = YOLO(str(weights), task="detect")
        self.device = device
        raw = self.model.names
        self.labels = tuple(str(raw[k]) for k in sorted(raw)) if isinstance(raw, dict) else tuple(raw)
        self.info = info

    def trained_image_size(self) -> int | None:
        """The ``imgsz`` the checkpoint was trained at, when it records one."""
        args = (getattr(self.model, "ckpt", None) or {}).get("train_args") or {}
        size = args.get("imgsz") if isinstance(args, dict) else None
        return size if isinstance(size, int) and size > 0 else None

    def prepare(self, image: np.ndarray) -> Prepared:
        # ultralytics letterboxes itself; it wants BGR
        return Prepared(key=None, data=np.ascontiguousarray(image[..., ::-1]), orig_hw=image.shape[:2])

    def run(self, batch: Sequence[Prepared], conf_threshold: float) -> list[tuple[Detection, ...]]:
        if not batch:
            return []
        results = self.model.predict([p.data for p in batch], imgsz=self.info.input_size,
                                     conf=conf_threshold, device=self.device, verbose=False)
        out = []
        for p, r in zip(batch, results):
            b = r.boxes
            out.append(xyxy_to_detections(b.xyxy.cpu().numpy(), b.conf.cpu().numpy(),
                                          b.cls.cpu().numpy(), p.orig_hw, conf_threshold))
        return out
