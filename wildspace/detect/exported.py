"""Run a detector from its cached ONNX export alone: no PyTorch, no ultralytics, no unpickling.

The first load of a checkpoint with ``backend="onnx"`` (or ``auto``, when the export won)
goes through the full detector: the checkpoint is checked, loaded, exported and verified,
and the cache report gets a ``runtime`` record (labels, stride, NMS settings). Every later
load finds that record by the weights' sha256 and builds an :class:`ExportedYoloDetector`:
ONNX Runtime for the network, NumPy/OpenCV for the letterbox, NMS and box mapping
(:mod:`wildspace.detect.nms`, bit-identical to ultralytics'). A command then starts in about
a second instead of importing PyTorch, torchvision and ultralytics and rebuilding the model.

Ultralytics YOLO-family detectors (MDv6, MDv1000) and legacy YOLOv5 checkpoints (MDv5) use this
path; RT-DETR has no export. The cache folder is the user's own data dir; files in it are
trusted like the weights cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from wildspace.detect.base import Prepared, xyxy_to_detections
from wildspace.detect.network_io import nchw_float
from wildspace.errors import UsageError
from wildspace.types import Detection, DetectorInfo

# 2: legacy YOLOv5 records carry the head's strides and anchors (a record of version 1 makes
# the next load go through the full detector once, which rewrites it)
RUNTIME_VERSION = 2
RUNTIME_FAMILIES = ("ultralytics", "yolov5-legacy")


def runtime_record(family: str, labels: Sequence[str], stride: int, end2end: bool, trained_size: int | None,
                   iou: float, max_det: int, agnostic: bool, head: dict | None = None) -> dict:
    """What a torch-free run of an exported YOLO network needs besides the network (``head``:
    a legacy YOLOv5 head's :func:`~wildspace.detect.yolov5_head.head_record`)."""
    if family not in RUNTIME_FAMILIES:
        raise UsageError(f"no torch-free runtime for family '{family}'")
    record = {"version": RUNTIME_VERSION, "family": family, "labels": list(labels), "stride": int(stride),
              "end2end": bool(end2end), "trained_size": trained_size, "iou": float(iou), "max_det": int(max_det),
              "agnostic": bool(agnostic)}
    if head is not None:
        record["head"] = head
    return record


def find_export(weights: str | Path, family: str, export_dir: str | Path, requested: str,
                device: str, threads: int | None = None, precision: str = "fp32") -> tuple[Path, dict] | None:
    """The cached export of ``weights`` with a runtime record, when the backend asked for
    would use it (``onnx``; ``auto`` when its speed record is current for this machine and
    ``threads`` and does not favour eager PyTorch; a ``bf16`` run always, through OpenVINO);
    else ``None`` (the full detector then measures again where needed). ``family`` is the
    checkpoint's (``ultralytics`` or ``yolov5-legacy``)."""
    from importlib.util import find_spec

    from wildspace.detect.cpu import openvino_available, resolve_threads
    from wildspace.detect.onnx_backend import cache_key, prefer_exported, speed_record_current
    from wildspace.hub.fetch import sha256_file

    if family not in RUNTIME_FAMILIES or requested == "torch" or not str(device).startswith("cpu"):
        return None
    if find_spec("onnxruntime") is None or (precision == "bf16" and not openvino_available()):
        return None
    key = cache_key(sha256_file(Path(weights)), family)
    onnx_path, meta_path = Path(export_dir) / f"{key}.onnx", Path(export_dir) / f"{key}.json"
    if not (onnx_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    runtime = meta.get("runtime") or {}
    if runtime.get("version") != RUNTIME_VERSION or runtime.get("family") != family:
        return None
    if precision == "bf16":
        return onnx_path, meta  # no eager-vs-export choice: eager bf16 is slower and fails parity
    if requested == "auto" and not speed_record_current(meta, resolve_threads(threads)):
        return None  # measured elsewhere, with other versions, or implausibly: measure again
    if not prefer_exported(requested, meta):
        return None
    return onnx_path, meta


def default_streams(threads: int | None) -> int:
    """Network sessions (ONNX Runtime) or streams (OpenVINO) for a torch-free detector: two
    when there are two threads or more (each with half of them), else one. On 2 cores two
    ONNX Runtime sessions with batches of 2 took ~15 % less wall time and ~5 % less CPU per
    image than one session with batches of 4 (an interleaved A/B of the whole command,
    yolov9c at 640); two OpenVINO streams with single images beat one request (README
    "Performance")."""
    from wildspace.detect.cpu import resolve_threads

    return 2 if resolve_threads(threads) >= 2 else 1


class ExportedYoloDetector:
    """A YOLO detector run from its verified ONNX export (CPU, no PyTorch): ONNX Runtime for
    ``fp32``, OpenVINO for ``bf16``.

    Same letterbox, network arithmetic, NMS and box mapping as the family's own detector with
    ``backend="onnx"``: :class:`~wildspace.detect.ultralytics_detector.UltralyticsDetector`
    or :class:`~wildspace.detect.yolov5_detector.YOLOv5Detector`.
    """

    backend = "onnx"
    precision_reason: str  # set by wildspace.detect.factory
    rtdetr = False

    def __init__(self, onnx_path: str | Path, meta: dict, info: DetectorInfo, threads: int | None = None,
                 precision: str = "fp32"):
        from wildspace.detect.onnx_backend import exported_network

        rt = meta["runtime"]
        self.family = rt["family"]
        self.labels = tuple(rt["labels"])
        self.stride = int(rt["stride"])
        self.end2end = bool(rt["end2end"])
        self._trained_size = rt.get("trained_size")
        self.iou, self.max_det, self.agnostic = float(rt["iou"]), int(rt["max_det"]), bool(rt["agnostic"])
        # two one-thread sessions (ONNX Runtime) or streams (OpenVINO) on 2+ cores, see
        # default_streams and OpenVinoNetwork.batch_size
        self.network = exported_network(Path(onnx_path), threads, default_streams(threads), precision=precision,
                                        head=rt.get("head") if self.family == "yolov5-legacy" else None)
        self.precision = precision
        self.export_meta = meta
        self.threads = self.network.threads
        self.info = info
        self.device = "cpu"

    @property
    def cpu_batch_size(self) -> int | None:
        """Images per forward pass the runtime prefers (None: the pipeline's default)."""
        return getattr(self.network, "batch_size", None)

    @property
    def parallel_batches(self) -> int:
        """Batches the pipeline may run at once (one per ONNX Runtime session or OpenVINO stream)."""
        return self.network.streams

    def trained_image_size(self) -> int | None:
        return self._trained_size

    def prepare(self, image: np.ndarray) -> Prepared:
        from wildspace.detect.letterbox import letterbox, stride_letterbox

        if self.family == "yolov5-legacy":
            padded, geom = letterbox(image, self.info.input_size, self.stride)
            return Prepared(key=geom.input_hw, data=padded, orig_hw=geom.orig_hw, meta=geom)
        padded = stride_letterbox(image, self.info.input_size, self.stride)
        return Prepared(key=padded.shape[:2], data=padded, orig_hw=image.shape[:2])

    def forward(self, arr: np.ndarray) -> np.ndarray:
        """Raw network output for a ``B x H x W x 3`` uint8 RGB letterboxed batch."""
        return self.network.on_images(arr)

    def run(self, batch: Sequence[Prepared], conf_threshold: float) -> list[tuple[Detection, ...]]:
        from wildspace.detect.letterbox import boxes_to_original, unletterbox_boxes
        from wildspace.detect.nms import yolo_nms, yolov5_nms

        if not batch:
            return []
        arr = np.stack([p.data for p in batch])
        out = []
        # NMS reads the network's output in place (it keeps copies of the candidates only)
        if self.family == "yolov5-legacy":
            conf = min(conf_threshold, 0.999)
            if getattr(self.network, "head", None) is not None:  # OpenVINO, head cut: passing rows only
                kept = self.network.apply_rows(nchw_float(arr), conf, lambda rows: yolov5_nms(
                    rows, conf, self.iou, self.max_det))
            else:
                kept = self.network.apply(nchw_float(arr), lambda pred: yolov5_nms(
                    pred, conf, self.iou, self.max_det))
            for p, det in zip(batch, kept):
                xyxy = boxes_to_original(det[:, :4], p.meta) if len(det) else det[:, :4]
                out.append(xyxy_to_detections(xyxy, det[:, 4], det[:, 5], p.orig_hw, conf_threshold))
            return out
        kept = self.network.apply(nchw_float(arr), lambda pred: yolo_nms(
            pred, conf_threshold, self.iou, self.max_det, self.agnostic, self.end2end))
        for p, det in zip(batch, kept):
            xyxy = unletterbox_boxes(det[:, :4], arr.shape[1:3], p.orig_hw)
            out.append(xyxy_to_detections(xyxy, det[:, 4], det[:, 5], p.orig_hw, conf_threshold))
        return out
