"""Detector for legacy YOLOv5 checkpoints (MegaDetector v5): letterbox, forward, NMS."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torchvision

from wildspace.detect.base import Prepared, xyxy_to_detections
from wildspace.detect.cpu import resolve_threads, set_torch_threads
from wildspace.detect.letterbox import boxes_to_original, letterbox
from wildspace.detect.nms import MAX_WH
from wildspace.detect.onnx_backend import bf16_on_export, choose_network, eager_precision
from wildspace.detect.precision import bf16_autocast, prepare_bf16
from wildspace.detect.yolov5_legacy import load_yolov5_checkpoint
from wildspace.types import Detection, DetectorInfo


def yolov5_nms(pred: torch.Tensor, conf_threshold: float, iou_threshold: float = 0.45,
               max_det: int = 300, max_nms: int = 30000) -> list[torch.Tensor]:
    """Class-aware NMS on ``(B, N, 5 + nc)`` YOLOv5 output.

    A row survives when objectness > ``conf_threshold`` and objectness x best class
    probability > ``conf_threshold``. Returns per image an ``(n, 6)`` tensor of
    ``[x1, y1, x2, y2, conf, class_id]`` in input px, by descending conf.
    """
    out = []
    for x in pred:
        x = x[x[:, 4] > conf_threshold]
        if not len(x):
            out.append(torch.zeros((0, 6), device=pred.device))
            continue
        scores = x[:, 5:] * x[:, 4:5]
        conf, cls = scores.max(1)
        keep = conf > conf_threshold
        x, conf, cls = x[keep], conf[keep], cls[keep]
        cx, cy, w, h = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
        boxes = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 1)
        order = conf.argsort(descending=True, stable=True)[:max_nms]  # ties: first row first
        boxes, conf, cls = boxes[order], conf[order], cls[order]
        kept = torchvision.ops.nms(boxes + cls[:, None].float() * MAX_WH, conf, iou_threshold)[:max_det]
        out.append(torch.cat((boxes[kept], conf[kept, None], cls[kept, None].float()), 1))
    return out


class YOLOv5Detector:
    """Runs a legacy YOLOv5 checkpoint the way the reference implementation does.

    Args:
        backend: ``torch`` (eager), ``onnx`` (exported to ONNX Runtime, CPU) or ``auto``
            (ONNX Runtime on CPU when available, else torch); see
            :mod:`wildspace.detect.onnx_backend`.
        export_dir: cache folder for exported networks (default ``<WILDSPACE_HOME>/exported``).
        half: fp16 autocast on CUDA (default: on for CUDA, never on CPU).
        threads: CPU threads for PyTorch and ONNX Runtime (default
            :func:`~wildspace.detect.cpu.resolve_threads`).
        precision: ``fp32`` or ``bf16`` (CPU: OpenVINO over the export with backends
            ``onnx``/``auto``, eager PyTorch bf16 autocast with the head in fp32 with ``torch``;
            :mod:`wildspace.detect.precision`).
    """

    precision_reason: str  # set by wildspace.detect.factory

    def __init__(self, weights: str | Path, info: DetectorInfo, stride: int | None = None,
                 device: str = "cpu", iou_threshold: float = 0.45, backend: str = "torch",
                 export_dir: str | Path | None = None, half: bool | None = None,
                 threads: int | None = None, precision: str = "fp32"):
        self.threads = resolve_threads(threads)
        set_torch_threads(self.threads)
        self.model, labels = load_yolov5_checkpoint(weights)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.model.to(self.device)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.half = self.cuda if half is None else (half and self.cuda)
        self.stride = stride or int(self.model.stride.max())
        self.iou_threshold = iou_threshold
        self.labels = labels
        self.info = info
        self.backend = "torch"
        self._onnx = None
        self.export_meta: dict | None = None
        self.precision = eager_precision(precision, backend, device)
        if self.precision == "bf16" and not bf16_on_export(self.precision, backend):
            prepare_bf16(self.model, self.model.model[-1])
            return
        self._onnx, self.backend, self.export_meta = choose_network(
            backend, device, lambda: self._export(Path(weights), export_dir, remeasure=backend == "auto"),
            precision=self.precision)
        if self.precision == "bf16" and self._onnx is None:  # the export failed: eager bf16
            prepare_bf16(self.model, self.model.model[-1])

    def _export(self, weights: Path, export_dir: str | Path | None, remeasure: bool = False):
        from wildspace.detect.onnx_backend import cache_key, default_export_dir, load_or_export, no_grad, single_output
        from wildspace.hub.fetch import sha256_file

        net = single_output(self.model)

        from wildspace.detect.exported import runtime_record

        key = cache_key(sha256_file(weights), "yolov5-legacy")
        return load_or_export(net, Path(export_dir or default_export_dir()), key,
                              (4 * self.stride, 5 * self.stride), self.stride,
                              torch_forward=no_grad(lambda x: net(torch.from_numpy(x))),
                              runtime=runtime_record("yolov5-legacy", self.labels, self.stride, False, None,
                                                     self.iou_threshold, 300, False, head=self._head_record()),
                              threads=self.threads, remeasure=remeasure, precision=self.precision)

    def _head_record(self) -> dict:
        """The Detect head's strides and anchors in px, for the torch-free OpenVINO path."""
        from wildspace.detect.yolov5_head import head_record
        from wildspace.detect.yolov5_modules import Detect

        head = self.model.model[-1]
        assert isinstance(head, Detect)  # parse_model ends every model with its Detect head
        strides = head.stride.float()
        return head_record(strides.tolist(), (head.anchors.float() * strides.view(-1, 1, 1)).flatten(1).tolist())

    def prepare(self, image: np.ndarray) -> Prepared:
        padded, geom = letterbox(image, self.info.input_size, self.stride)
        return Prepared(key=geom.input_hw, data=padded, orig_hw=geom.orig_hw, meta=geom)

    @torch.inference_mode()
    def forward(self, arr: np.ndarray) -> torch.Tensor:
        """Network predictions ``(B, N, 5 + nc)`` (on the device) for a ``B x H x W x 3``
        uint8 RGB batch."""
        if self._onnx is not None:
            return torch.from_numpy(self._onnx.on_images(arr))
        x = torch.from_numpy(arr)
        if self.cuda:  # pinned host memory: the copy overlaps with work already queued
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float() / 255
        if self.cuda or self.precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision == "bf16":
            with bf16_autocast():
                return self.model(x)[0].float()
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            return self.model(x)[0].float()

    @torch.inference_mode()
    def run(self, batch: Sequence[Prepared], conf_threshold: float) -> list[tuple[Detection, ...]]:
        if not batch:
            return []
        pred = self.forward(np.stack([p.data for p in batch]))  # NMS runs where pred is
        results = []
        for p, kept in zip(batch, yolov5_nms(pred, min(conf_threshold, 0.999), self.iou_threshold)):
            det = kept.cpu().numpy()
            xyxy = boxes_to_original(det[:, :4], p.meta) if len(det) else det[:, :4]
            results.append(xyxy_to_detections(xyxy, det[:, 4], det[:, 5], p.orig_hw, conf_threshold))
        return results
