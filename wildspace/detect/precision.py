"""Arithmetic precision of the detector networks on the CPU, and which one ``auto`` picks.

``fp32`` is the reference arithmetic (eager PyTorch or its ONNX Runtime export). ``bf16``
has two runtimes:

- **OpenVINO** (backends ``onnx`` and ``auto``, :mod:`wildspace.detect.openvino_backend`): the
  verified ONNX export compiled with bf16 inference precision (oneDNN's AVX-512 BF16 / AMX
  kernels, fp32 accumulation and outputs). About half the CPU time of ONNX Runtime fp32 on
  AVX-512 BF16 machines, and it passes the parity rule on real yolov5n at 640 and 1280;
- **eager PyTorch** (backend ``torch``): ``torch.autocast("cpu", bfloat16)`` with a
  channels-last network and the detection head (box decoding in input pixels) in fp32. It
  fails the parity rule at 1280 (7 of 8 boxes) and is slower than ONNX Runtime fp32 without AMX.

``auto`` takes a reduced-precision path only where both hold:

- the path (precision and runtime) passed the parity rule on real weights: >= 98 % of the
  golden reference boxes with conf >= 0.25 matched (same class, IoU >= 0.9, |dconf| <= 0.02)
  at 640 and at 1280 px (:data:`MEASURED_PARITY`, checked by
  ``tests/detect/test_precision_parity.py``). The only real detector weights available here
  are YOLOv5's (``yolov5n.pt``); the ultralytics family (MDv6, MDv1000) is judged by that
  measurement of the same runtime over the same kind of exported graph, and says so in
  ``detect --explain``;
- the CPU has the instructions that make it fast (:mod:`wildspace.detect.cpu`).

Otherwise ``auto`` is fp32, and the backend rule of :mod:`wildspace.detect.onnx_backend`
(ONNX Runtime unless measured clearly slower on this machine) picks how fp32 runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from wildspace.errors import UsageError

PRECISIONS = ("fp32", "bf16", "auto")
PARITY_MIN_SHARE = 0.98


@dataclass(frozen=True)
class ParityResult:
    """Reference boxes (conf >= 0.25) matched by a path on real weights, per input size."""

    weights: str
    matched: dict[int, tuple[int, int]]  # size -> (matched, reference boxes)
    recall_at_typical: dict[int, tuple[int, int]]  # size -> (kept, reference boxes >= 0.2), IoU >= 0.5
    note: str = ""
    measured_on: str = ""  # another family whose weights were measured, when this family has none

    @property
    def passes(self) -> bool:
        return all(total and m / total >= PARITY_MIN_SHARE for m, total in self.matched.values())

    def summary(self) -> str:
        sizes = ", ".join(f"{m}/{t} at {s}" for s, (m, t) in sorted(self.matched.items()))
        where = f" of the {self.measured_on} family (none of this family here)" if self.measured_on else ""
        return f"{sizes} on {self.weights}{where} ({'passes' if self.passes else 'fails'} the 98 % rule)"


# Measured with tests/detect/test_precision_parity.py (bench/bench_precision.py prints the
# same) on the shared MegaDetector test images, torch 2.14.1; keys: (family, precision, runtime).
# The torch rows on an AMD EPYC Zen 4 (AVX-512 BF16), the OpenVINO row (openvino 2026.4) on
# another AMD EPYC with AVX-512 BF16 on 2026-12-02.
_YOLOV5N_OPENVINO_BF16 = ParityResult(
    "yolov5n.pt", {640: (7, 7), 1280: (8, 8)}, {640: (8, 8), 1280: (11, 11)},
    note="OpenVINO bf16 over the verified ONNX export: max |dconf| 0.015 at 640, 0.018 at 1280; "
         "matched boxes IoU >= 0.96")
MEASURED_PARITY: dict[tuple[str, str, str], ParityResult] = {
    ("yolov5-legacy", "fp32", "any"): ParityResult("yolov5n.pt", {640: (7, 7), 1280: (8, 8)},
                                                   {640: (8, 8), 1280: (11, 11)}),
    ("yolov5-legacy", "bf16", "torch"): ParityResult(
        "yolov5n.pt", {640: (7, 7), 1280: (7, 8)}, {640: (8, 8), 1280: (10, 11)},
        note="the miss: a 0.396 'bear' read 0.374 (|dconf| 0.022 > 0.02); boxes within IoU 0.99"),
    ("yolov5-legacy", "bf16", "openvino"): _YOLOV5N_OPENVINO_BF16,
    # No real MDv6/MDv1000 file can be had here, so the ultralytics family is judged by the
    # same rule on the one real YOLO network there is: the arithmetic (OpenVINO's bf16
    # kernels over an exported YOLO graph with fp32 outputs) is what the parity measures.
    # `--precision fp32` keeps the reference arithmetic.
    ("ultralytics", "bf16", "openvino"): dataclasses.replace(_YOLOV5N_OPENVINO_BF16, measured_on="yolov5-legacy"),
}


def check_precision(name: str) -> str:
    """``name`` if it is a known precision, else ``ValueError`` listing the choices."""
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision '{name}'; choose from {', '.join(PRECISIONS)}")
    return name


def cpu_supports(precision: str) -> bool:
    """Whether this CPU has fast instructions for ``precision`` (fp32 always)."""
    from wildspace.detect.cpu import has_fast_bf16

    return precision == "fp32" or (precision == "bf16" and has_fast_bf16())


def bf16_runtime(backend: str) -> str:
    """What runs a bf16 network for ``backend``: ``openvino`` (the exported graph; backends
    ``onnx`` and ``auto`` when openvino is installed) or ``torch`` (eager autocast)."""
    from wildspace.detect.cpu import openvino_available

    return "torch" if backend == "torch" or not openvino_available() else "openvino"


def resolve_precision(requested: str, family: str, device: str = "cpu", backend: str = "auto") -> tuple[str, str]:
    """``(precision, why)`` for a detector of ``family`` asked for ``requested`` with ``backend``.

    An explicit ``fp32``/``bf16`` is honoured on the CPU (bf16 without fast instructions is
    emulated, slowly, and says so); GPUs keep their own fp16 rule (``fp32`` here).
    """
    check_precision(requested)
    if not str(device).startswith("cpu"):
        return "fp32", f"device {device}: CPU precisions do not apply (CUDA runs fp16 autocast)"
    if requested != "auto":
        why = "asked for"
        if requested == "bf16":
            openvino = bf16_runtime(backend) == "openvino"
            why += " (OpenVINO over the ONNX export)" if openvino else " (eager PyTorch autocast)"
            if not cpu_supports("bf16"):
                why += "; this CPU has no AMX/AVX-512 BF16, so bf16 is emulated and slow"
        return requested, why
    reasons = []
    for candidate in ("bf16",):
        runtime = bf16_runtime(backend)
        parity = MEASURED_PARITY.get((family, candidate, runtime))
        where = "OpenVINO" if runtime == "openvino" else "eager PyTorch"
        if parity is None:
            reasons.append(f"{candidate} ({where}): no parity measurement for the {family} family")
        elif not parity.passes:
            reasons.append(f"{candidate} ({where}): parity {parity.summary()}")
        elif not cpu_supports(candidate):
            reasons.append(f"{candidate} ({where}): this CPU lacks AMX/AVX-512 BF16")
        else:
            return candidate, (f"{candidate} ({where}): parity {parity.summary()}, and this CPU has fast "
                               f"{candidate}; --precision fp32 for the reference arithmetic")
    return "fp32", "fp32, the reference arithmetic; not " + "; ".join(reasons)


def keep_in_fp32(module) -> None:
    """Run ``module`` (a detection head) in fp32 under an autocast region: its tensor inputs
    are cast to float and autocast is off inside. Changes the instance in place."""
    import torch

    forward = module.forward

    def to_float(v):
        if isinstance(v, torch.Tensor):
            return v.float()
        if isinstance(v, (list, tuple)):
            return type(v)(to_float(x) for x in v)
        return v

    def fp32_forward(*args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return forward(*to_float(args), **kwargs)

    module.forward = fp32_forward


def prepare_bf16(model, head) -> None:
    """Make a CPU network ready for bf16 autocast: channels-last weights, ``head`` in fp32."""
    import torch

    model.to(memory_format=torch.channels_last)
    keep_in_fp32(head)


def bf16_autocast():
    """The autocast region bf16 networks run under."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)
