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
from typing import TYPE_CHECKING, Sequence, cast

import numpy as np

from wildspace.detect.base import Prepared, xyxy_to_detections
from wildspace.detect.cpu import set_torch_threads
from wildspace.detect.onnx_backend import BackendUnavailable, bf16_on_export, choose_network, eager_precision
from wildspace.hub.safe_pickle import UnsafeCheckpoint, check_globals
from wildspace.types import Detection, DetectorInfo

if TYPE_CHECKING:
    import torch
    from ultralytics.engine.results import Boxes, Results
    from ultralytics.nn.autobackend import AutoBackend

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
    """Keep ultralytics offline and its settings file out of the user's home (set for the
    library before it loads; nothing is read from the environment here)."""
    from wildspace.settings import load_settings

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(load_settings().home / "ultralytics"))


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
    """Runs a verified ultralytics checkpoint with ultralytics' own network, letterbox and NMS.

    YOLO-family models (v8/v9/v10/11…) run batched: :meth:`prepare` letterboxes to the
    minimum stride-aligned rectangle exactly as ultralytics' predictor does for one image
    (``LetterBox(auto=True)``), images are grouped by that shape, the network runs through
    ultralytics' ``AutoBackend`` (or an exported ONNX Runtime copy, ``backend="onnx"``), and
    ultralytics' ``non_max_suppression`` and ``scale_boxes`` are called with the predictor's
    defaults. So a batch gives the detections the predictor gives one file at a time.
    RT-DETR models go through ultralytics' predictor (torch only).

    Args:
        backend: ``torch``, ``onnx`` or ``auto`` (see :mod:`wildspace.detect.onnx_backend`).
        export_dir: cache folder for exported networks.
        half: fp16 on CUDA (default: on for CUDA, never on CPU).
        threads: CPU threads for PyTorch and ONNX Runtime (default
            :func:`~wildspace.detect.cpu.resolve_threads`), set again after ultralytics'
            ``select_device`` has changed PyTorch's.
        precision: ``fp32`` or ``bf16`` (CPU: OpenVINO over the export with backends
            ``onnx``/``auto``, eager PyTorch bf16 autocast with the head in fp32 with ``torch``;
            :mod:`wildspace.detect.precision`). RT-DETR runs fp32.
    """

    precision_reason: str  # set by wildspace.detect.factory

    def __init__(self, weights: str | Path, info: DetectorInfo, device: str = "cpu",
                 backend: str = "torch", export_dir: str | Path | None = None,
                 half: bool | None = None, threads: int | None = None, precision: str = "fp32"):
        from wildspace.detect.cpu import resolve_threads

        self.threads = resolve_threads(threads)
        weights = Path(weights).absolute()  # keep the snapshot name: ultralytics wants ".pt"
        names = check_ultralytics_checkpoint(weights)
        source = weights
        if weights.suffix != ".pt":
            weights = _pt_alias(weights)
        _configure_ultralytics()
        from ultralytics import RTDETR, YOLO

        self.rtdetr = "ultralytics.nn.tasks.RTDETRDetectionModel" in names
        self.model = RTDETR(str(weights)) if self.rtdetr else YOLO(str(weights), task="detect")
        self.device = device
        raw = self.model.names
        self.labels = tuple(str(raw[k]) for k in sorted(raw)) if isinstance(raw, dict) else tuple(raw)
        self.info = info
        self.backend = "torch"
        self._onnx = None
        self.export_meta: dict | None = None
        self.precision = "fp32"
        self.network: AutoBackend | None = None  # the eager network (every model but RT-DETR)
        self.stride = 32
        if self.rtdetr:
            set_torch_threads(self.threads)
            if backend == "onnx":
                raise BackendUnavailable("backend 'onnx' is not available for RT-DETR models; "
                                         "use backend 'torch'")
            return
        import torch
        import torchvision  # noqa: F401  ultralytics' NMS uses torchvision's once imported, as the predictor does
        from ultralytics.nn.autobackend import AutoBackend
        from ultralytics.utils.torch_utils import select_device

        cuda = str(device).startswith("cuda")
        network = AutoBackend(model=self.model.model, device=select_device(device, verbose=False),
                              fp16=cuda if half is None else (half and cuda), fuse=True,
                              verbose=False, channels_last=True if cuda else None)  # None: as the predictor
        network.eval()
        self.network = network
        set_torch_threads(self.threads)  # select_device chose min(8, cores - 1)
        self.stride = int(network.stride)
        self._torch = torch
        self.precision = eager_precision(precision, backend, device)
        if self.precision == "bf16" and not bf16_on_export(self.precision, backend):
            self._eager_bf16()
            return
        self._onnx, self.backend, self.export_meta = choose_network(
            backend, device, lambda: self._export(source, export_dir, remeasure=backend == "auto"),
            precision=self.precision)
        if self.precision == "bf16" and self._onnx is None:  # the export failed: eager bf16
            self._eager_bf16()

    def _eager_bf16(self) -> None:
        from wildspace.detect.precision import prepare_bf16

        network = self._eager()
        prepare_bf16(network.model, network.model.model[-1])

    def _eager(self) -> AutoBackend:
        """The eager network; RT-DETR has none (it runs ultralytics' predictor)."""
        if self.network is None:
            raise RuntimeError("this RT-DETR detector runs through ultralytics' predictor only")
        return self.network

    def _export(self, weights: Path, export_dir: str | Path | None, remeasure: bool = False):
        import copy

        from wildspace.detect.onnx_backend import cache_key, default_export_dir, load_or_export, no_grad, single_output
        from wildspace.hub.fetch import sha256_file

        network = self._eager()
        net = copy.deepcopy(network.model)
        for m in net.modules():  # as ultralytics' exporter: anchors computed in the graph
            if hasattr(m, "export") and hasattr(m, "dynamic"):
                m.export, m.dynamic, m.format = True, True, "onnx"
        net = single_output(net)

        from ultralytics.utils import DEFAULT_CFG

        from wildspace.detect.exported import runtime_record

        key = cache_key(sha256_file(weights), "ultralytics")
        return load_or_export(net, Path(export_dir or default_export_dir()), key,
                              (4 * self.stride, 5 * self.stride), self.stride,
                              torch_forward=no_grad(lambda x: network(self._torch.from_numpy(x))),
                              runtime=runtime_record("ultralytics", self.labels, self.stride,
                                                     getattr(network, "end2end", False),
                                                     self.trained_image_size(), DEFAULT_CFG.iou,
                                                     DEFAULT_CFG.max_det, DEFAULT_CFG.agnostic_nms),
                              threads=self.threads, remeasure=remeasure, precision=self.precision)

    def trained_image_size(self) -> int | None:
        """The ``imgsz`` the checkpoint was trained at, when it records one."""
        args = (getattr(self.model, "ckpt", None) or {}).get("train_args") or {}
        size = args.get("imgsz") if isinstance(args, dict) else None
        return size if isinstance(size, int) and size > 0 else None

    def prepare(self, image: np.ndarray) -> Prepared:
        if self.rtdetr:  # the RT-DETR predictor letterboxes itself; it wants BGR
            return Prepared(key=None, data=np.ascontiguousarray(image[..., ::-1]), orig_hw=image.shape[:2])
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils.checks import check_imgsz

        size = check_imgsz(self.info.input_size, stride=self.stride, min_dim=2)
        # the letterbox treats channels alike: RGB in, RGB out (the predictor flips BGR later)
        padded = cast(np.ndarray, LetterBox(size, auto=True, stride=self.stride)(image=image))  # no labels: array
        return Prepared(key=padded.shape[:2], data=padded, orig_hw=image.shape[:2])

    def forward(self, arr: np.ndarray):
        """Raw network output for a ``B x H x W x 3`` uint8 RGB letterboxed batch."""
        torch = self._torch
        if self._onnx is not None:
            return torch.from_numpy(self._onnx.on_images(arr))
        network = self._eager()
        x = torch.from_numpy(arr)
        if network.device.type == "cuda":
            x = x.pin_memory().to(network.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).contiguous()
        if self.precision == "bf16":
            from wildspace.detect.precision import bf16_autocast

            with torch.inference_mode(), bf16_autocast():
                return network(x.float().div_(255).contiguous(memory_format=torch.channels_last))
        with torch.inference_mode():
            return network((x.half() if network.fp16 else x.float()).div_(255))

    def run(self, batch: Sequence[Prepared], conf_threshold: float) -> list[tuple[Detection, ...]]:
        if not batch:
            return []
        if self.rtdetr:
            return self._run_predictor(batch, conf_threshold)
        from ultralytics.utils import DEFAULT_CFG, nms, ops

        arr = np.stack([p.data for p in batch])
        with self._torch.inference_mode():
            kept = nms.non_max_suppression(self.forward(arr), conf_threshold, DEFAULT_CFG.iou, None,
                                           DEFAULT_CFG.agnostic_nms, max_det=DEFAULT_CFG.max_det, nc=0,
                                           end2end=getattr(self.network, "end2end", False))
            out = []
            for p, det in zip(batch, kept):
                xyxy = ops.scale_boxes(arr.shape[1:3], det[:, :4].clone(), p.orig_hw)
                out.append(xyxy_to_detections(_to_numpy(xyxy), det[:, 4].cpu().numpy(),
                                              det[:, 5].cpu().numpy(), p.orig_hw, conf_threshold))
        return out

    def _run_predictor(self, batch: Sequence[Prepared], conf_threshold: float) -> list[tuple[Detection, ...]]:
        results = cast("list[Results]", self.model.predict(  # stream=False: a list of Results
            [p.data for p in batch], imgsz=self.info.input_size, conf=conf_threshold, device=self.device,
            verbose=False))
        set_torch_threads(self.threads)  # the predictor's first call ran select_device again
        out = []
        for p, r in zip(batch, results):
            b = cast("Boxes", r.boxes)  # set on every detection result
            out.append(xyxy_to_detections(_to_numpy(b.xyxy), _to_numpy(b.conf), _to_numpy(b.cls),
                                          p.orig_hw, conf_threshold))
        return out


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Host values of a tensor (ultralytics types its boxes as tensor or array)."""
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()
