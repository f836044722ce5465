"""Arithmetic precision of the detector networks on the CPU, and which one ``auto`` picks.

``fp32`` is the reference arithmetic (eager PyTorch or its ONNX Runtime export). ``bf16``
runs eager PyTorch under ``torch.autocast("cpu", bfloat16)`` with a channels-last network,
which oneDNN maps onto AMX or AVX-512 BF16 instructions; the detection head (box decoding:
grid offsets and anchors in input pixels) always stays fp32, because bf16 has 8 bits of
mantissa and would round a coordinate near 1280 px to a multiple of 8 px.

``auto`` takes a reduced-precision path only where both hold:

- it passed the parity rule on real weights of the model's family: >= 98 % of the golden
  reference boxes with conf >= 0.25 matched (same class, IoU >= 0.9, |dconf| <= 0.02) at
  640 and at 1280 px (:data:`MEASURED_PARITY`, checked by
  ``tests/detect/test_precision_parity.py``). A family without such a measurement (e.g. a
  user's ultralytics model) stays fp32: one family's parity says nothing about another's;
- the CPU has the instructions that make it fast (:mod:`wildspace.detect.cpu`).

Otherwise ``auto`` is fp32, and the backend rule of :mod:`wildspace.detect.onnx_backend`
(ONNX Runtime unless measured clearly slower on this machine) picks how fp32 runs.
"""

from __future__ import annotations

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

    @property
    def passes(self) -> bool:
        return all(total and m / total >= PARITY_MIN_SHARE for m, total in self.matched.values())

    def summary(self) -> str:
        sizes = ", ".join(f"{m}/{t} at {s}" for s, (m, t) in sorted(self.matched.items()))
        return f"{sizes} on {self.weights} ({'passes' if self.passes else 'fails'} the 98 % rule)"


# Measured with tests/detect/test_precision_parity.py (bench/bench_precision.py prints the
# same) on the shared MegaDetector test images, AMD EPYC Zen 4 (AVX-512 BF16), torch 2.14.1.
MEASURED_PARITY: dict[tuple[str, str], ParityResult] = {
    ("yolov5-legacy", "fp32"): ParityResult("yolov5n.pt", {640: (7, 7), 1280: (8, 8)},
                                            {640: (8, 8), 1280: (11, 11)}),
    ("yolov5-legacy", "bf16"): ParityResult(
        "yolov5n.pt", {640: (7, 7), 1280: (7, 8)}, {640: (8, 8), 1280: (10, 11)},
        note="the miss: a 0.396 'bear' read 0.374 (|dconf| 0.022 > 0.02); boxes within IoU 0.99"),
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


def resolve_precision(requested: str, family: str, device: str = "cpu") -> tuple[str, str]:
    """``(precision, why)`` for a detector of ``family`` asked for ``requested``.

    An explicit ``fp32``/``bf16`` is honoured on the CPU (bf16 without fast instructions is
    emulated, slowly, and says so); GPUs keep their own fp16 rule (``fp32`` here).
    """
    check_precision(requested)
    if not str(device).startswith("cpu"):
        return "fp32", f"device {device}: CPU precisions do not apply (CUDA runs fp16 autocast)"
    if requested != "auto":
        why = "asked for"
        if requested == "bf16" and not cpu_supports("bf16"):
            why += "; this CPU has no AMX/AVX-512 BF16, so bf16 is emulated and slow"
        return requested, why
    reasons = []
    for candidate in ("bf16",):
        parity = MEASURED_PARITY.get((family, candidate))
        if parity is None:
            reasons.append(f"{candidate}: no parity measurement for the {family} family")
        elif not parity.passes:
            reasons.append(f"{candidate}: parity {parity.summary()}")
        elif not cpu_supports(candidate):
            reasons.append(f"{candidate}: this CPU lacks the instructions")
        else:
            return candidate, f"{candidate}: parity {parity.summary()}, and this CPU has fast {candidate}"
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
