"""Build a detector from a local, verified weight file (never downloads)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from wildspace.detect.base import BuiltDetector, Detector
from wildspace.errors import UsageError
from wildspace.hub.safe_pickle import UnsafeCheckpoint, checkpoint_globals, is_data_global
from wildspace.hub.specs import ModelSpec
from wildspace.types import DetectorInfo

DETECTOR_FAMILIES = ("yolov5-legacy", "ultralytics")


def detect_family(path: str | Path) -> str:
    """Which detector family a checkpoint belongs to, from the globals its pickle names.

    Raises:
        UnsafeCheckpoint: unreadable, or of no supported family.
    """
    names = checkpoint_globals(path)
    if any(n.startswith("models.yolo.") for n in names):
        return "yolov5-legacy"
    if any(n.startswith("ultralytics.nn.tasks.") for n in names):
        return "ultralytics"
    foreign = sorted(n for n in names if not is_data_global(n) and not n.startswith("torch.nn."))
    if foreign:
        raise UnsafeCheckpoint(f"{Path(path).name}: refused, the checkpoint references code "
                               f"outside the allowlist: {', '.join(foreign[:5])}")
    raise UnsafeCheckpoint(f"{Path(path).name}: not a detector checkpoint of a supported family "
                           f"({', '.join(DETECTOR_FAMILIES)})")


def _build_yolov5(path: Path, info: DetectorInfo, device: str, **runtime) -> BuiltDetector:
    from wildspace.detect.yolov5_detector import YOLOv5Detector

    return YOLOv5Detector(path, info, device=device, **runtime)


def _build_ultralytics(path: Path, info: DetectorInfo, device: str, **runtime) -> BuiltDetector:
    from wildspace.detect.ultralytics_detector import UltralyticsDetector

    return UltralyticsDetector(path, info, device=device, **runtime)


_BUILDERS: dict[str, Callable[..., BuiltDetector]] = {
    "yolov5-legacy": _build_yolov5,
    "ultralytics": _build_ultralytics,
}


def build_detector(path: str | Path, *, family: str | None = None, name: str | None = None,
                   input_size: int | None = None, labels: tuple[str, ...] = (),
                   thresholds: dict[str, float] | None = None, version: str = "",
                   device: str = "cpu", backend: str = "torch",
                   export_dir: str | Path | None = None, threads: int | None = None,
                   precision: str = "fp32") -> Detector:
    """Construct a detector from ``path``.

    Unknown values come from the checkpoint: the family from its pickle, labels from its
    class names, the input size from its training settings (else 640 for P5 / 1280 for P6).
    ``backend`` is ``torch``, ``onnx`` or ``auto`` (:mod:`wildspace.detect.onnx_backend`);
    exported networks are cached in ``export_dir``. ``threads``: CPU threads for PyTorch and
    ONNX Runtime (default :func:`~wildspace.detect.cpu.resolve_threads`). ``precision``:
    ``fp32``, ``bf16`` or ``auto`` (:func:`~wildspace.detect.precision.resolve_precision`);
    the detector's ``precision`` and ``precision_reason`` say what was chosen and why.
    """
    from wildspace.detect.onnx_backend import check_backend
    from wildspace.detect.precision import check_precision, resolve_precision

    check_backend(backend)
    check_precision(precision)
    path = Path(path)
    family = family or detect_family(path)
    if family not in _BUILDERS:
        raise UsageError(f"family '{family}' cannot detect; choose from {', '.join(_BUILDERS)}")
    thresholds = thresholds or {}
    info = DetectorInfo(
        name=name or path.stem, labels=tuple(labels), input_size=input_size or 0,
        typical_threshold=thresholds.get("typical", 0.2),
        conservative_threshold=thresholds.get("conservative", 0.05), version=version,
        extra={"file": path.name},
    )
    chosen, why = resolve_precision(precision, family, device, backend)
    det = _exported(path, family, info, device, backend, export_dir, threads, chosen) or \
        _BUILDERS[family](path, info, device, backend=backend, export_dir=export_dir, threads=threads,
                          precision=chosen)
    det.precision_reason = why if det.precision == chosen else f"{det.precision} (RT-DETR runs fp32)"
    updates: dict = {}
    if not info.labels or len(info.labels) != len(det.labels):
        updates["labels"] = det.labels
    if not input_size:
        updates["input_size"] = _default_size(det)
    if updates:
        det.info = dataclasses.replace(det.info, **updates)
    return det


def _exported(path: Path, family: str, info: DetectorInfo, device: str, backend: str,
              export_dir: str | Path | None, threads: int | None, precision: str) -> BuiltDetector | None:
    """The torch-free detector over this checkpoint's cached export, when there is one."""
    from wildspace.detect.exported import ExportedYoloDetector, find_export
    from wildspace.detect.onnx_backend import default_export_dir

    found = find_export(path, family, export_dir or default_export_dir(), backend, device, threads, precision)
    if not found:
        return None
    try:
        return ExportedYoloDetector(found[0], found[1], info, threads, precision=precision)
    except Exception as exc:  # a damaged cache entry: the full path checks and re-exports it
        import logging

        logging.getLogger(__name__).warning("cached export %s unusable: %s", found[0], exc)
        return None


def _default_size(det) -> int:
    trained = getattr(det, "trained_image_size", lambda: None)()
    if trained:
        return trained
    return 1280 if getattr(det, "stride", 32) >= 64 else 640


def build_detector_for_spec(spec: ModelSpec, path: str | Path, device: str = "cpu",
                            input_size: int | None = None, backend: str = "torch",
                            export_dir: str | Path | None = None, threads: int | None = None,
                            precision: str = "fp32") -> Detector:
    if spec.task != "detect":
        raise UsageError(f"model '{spec.name}' is a {spec.task} model, not a detector")
    det = build_detector(path, family=spec.family, name=spec.name,
                         input_size=input_size or spec.input_size, labels=spec.labels,
                         thresholds=spec.thresholds, version=spec.version, device=device,
                         backend=backend, export_dir=export_dir, threads=threads, precision=precision)
    det.info.extra["file"] = spec.weights.filename
    return det
