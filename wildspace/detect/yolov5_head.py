"""The legacy YOLOv5 (MegaDetector v5) head decoded in NumPy, only where objectness passes.

The exported network ends with the head's decoding: a sigmoid over every output, the box
arithmetic, a transpose to rows and the concatenation of all levels, ``(B, N, 5 + nc)`` (for a
1280x960 yolov5n input 75,600 rows of 85 values, 26 MB). OpenVINO runs that tail as memory-bound
reference kernels: a third of yolov5n's bf16 pass at 1280 (~25 of ~80 ms per image here),
for rows that NMS then throws away (all but a few hundred fail the objectness threshold).

So the OpenVINO path runs the verified export only up to the head's 1x1 convolutions, viewed
as ``(B, na, 5 + nc, ny, nx)`` (a graph cut, :func:`head_network`, saved once as an OpenVINO IR
beside the export and checked there against the whole graph: the same logits, bit for bit,
in bf16 too) and :func:`decode_candidates` decodes, in float32 with the
head's own arithmetic and row order, just the rows whose objectness passes the threshold.
NMS then sees exactly the rows it would have kept from the full output.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from wildspace.atomic import write_text_atomic

log = logging.getLogger(__name__)

HEAD_CHECK_VERSION = 1
# the cut graph + NumPy decoding against the whole graph, both fp32 OpenVINO, on a probe
HEAD_RTOL, HEAD_ATOL = 1e-4, 1e-4


def head_record(strides: Sequence[float], anchors_px: Sequence[Sequence[float]]) -> dict:
    """What decoding needs: each level's stride (px) and anchors ``[w0, h0, w1, h1, ...]`` (px)."""
    if len(strides) != len(anchors_px) or not strides:
        raise ValueError("one anchor list per head level")
    return {"strides": [float(s) for s in strides], "anchors": [[float(v) for v in a] for a in anchors_px]}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    y = np.negative(x, dtype=np.float32)
    np.exp(y, out=y)
    y += np.float32(1)
    return np.reciprocal(y, out=y)


def decode_candidates(maps: Sequence[np.ndarray], head: dict, conf_threshold: float | None) -> list[np.ndarray]:
    """Rows ``[cx, cy, w, h, obj, p_class...]`` (input px) per image, in the head's row order
    (level, anchor, y, x), for the positions whose objectness is above ``conf_threshold``
    (every position when ``None``: the whole graph's output).

    ``maps[i]`` is level ``i``'s 1x1 convolution output as the head views it before the
    permute, ``(B, na, 5 + nc, ny, nx)`` logits. The arithmetic is the head's, in float32:
    ``s = sigmoid``; ``xy = (2 s - 0.5 + grid) * stride``; ``wh = (2 s)^2 * anchor``.
    """
    if len(maps) != len(head["strides"]):
        raise ValueError(f"{len(maps)} head outputs for {len(head['strides'])} levels")
    batch = maps[0].shape[0]
    per_image: list[list[np.ndarray]] = [[] for _ in range(batch)]
    for logits, stride, anchors in zip(maps, head["strides"], head["anchors"]):
        b, na, no, ny, nx = logits.shape
        if len(anchors) != 2 * na:
            raise ValueError(f"{na} anchors in the output, {len(anchors) // 2} in the head record")
        anchor_wh = np.asarray(anchors, np.float32).reshape(na, 2)
        s32 = np.float32(stride)
        for i in range(b):
            if conf_threshold is None:
                a, y, x = (v.ravel() for v in np.indices((na, ny, nx)))
            else:  # the objectness planes only: 1 / (5 + nc) of the output
                a, y, x = np.nonzero(_sigmoid(logits[i, :, 4]) > np.float32(conf_threshold))
            s = _sigmoid(logits[i, a, :, y, x])  # (n, 5 + nc)
            grid = np.stack([x, y], 1).astype(np.float32)
            xy = (s[:, 0:2] * np.float32(2) - np.float32(0.5) + grid) * s32
            wh = (s[:, 2:4] * np.float32(2)) ** 2 * anchor_wh[a]
            per_image[i].append(np.concatenate([xy, wh, s[:, 4:]], 1))
    return [np.concatenate(rows, 0) for rows in per_image]


def find_head_outputs(model) -> list:
    """The head outputs of an OpenVINO model read from a YOLOv5 export, level 0 first: each
    level's 1x1 convolution viewed as ``(B, na, no, ny, nx)`` (a Reshape), which the head
    then permutes (a Transpose) and feeds to its sigmoid."""
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Transpose":
            continue
        src = op.input_value(0).get_node()
        users = {t.get_node().get_type_name() for t in op.output(0).get_target_inputs()}
        if src.get_type_name() == "Reshape" and "Sigmoid" in users and len(src.get_output_partial_shape(0)) == 5:
            found.append(src.output(0))
    return found


def head_network(ov, onnx_path: Path, head: dict, precision: str = "bf16") -> Path | None:
    """An OpenVINO IR of the export cut where the head's decoding begins (``<export>-head.xml``
    beside it), made and checked once; ``None`` when the graph has no such cut or the check
    fails (the caller then runs the whole graph).

    The check, on a probe batch: :func:`decode_candidates` of the cut graph's outputs must
    equal the whole graph's output within rtol/atol 1e-4, with both graphs compiled in fp32
    (the decoding is the head's) and in ``precision``, the one the network will run in (the
    cut must not change OpenVINO's arithmetic before it: a cut right after the convolution,
    for one, lets OpenVINO fuse the bias into a bf16 convolution, and the logits move). Its
    report (``<export>-head.json``) records the head and precision it was made for."""
    xml, report_path = (onnx_path.with_name(f"{onnx_path.stem}-head{ext}") for ext in (".xml", ".json"))
    wanted = {"version": HEAD_CHECK_VERSION, "head": head, "precision": precision}
    try:
        report = json.loads(report_path.read_text())
        if {k: report.get(k) for k in wanted} == wanted and (not report.get("ok") or _ir_present(xml)):
            return xml if report.get("ok") else None
    except (OSError, ValueError):
        pass  # no report, or a damaged one: make the cut again
    try:
        ok, detail = _make_head_network(ov, onnx_path, head, xml, precision)
    except (OSError, RuntimeError, ValueError) as exc:  # OpenVINO raises RuntimeError subclasses
        ok, detail = False, f"{type(exc).__name__}: {str(exc)[:300]}"
    if not ok:
        log.warning("running the whole graph of %s: %s", onnx_path.name, detail)
    try:
        write_text_atomic(report_path, json.dumps({**wanted, "ok": ok, "detail": detail}, indent=1))
    except OSError:
        pass  # a read-only cache: check again next time
    return xml if ok else None


def _ir_present(xml: Path) -> bool:
    return xml.is_file() and xml.with_suffix(".bin").is_file()


def _make_head_network(ov, onnx_path: Path, head: dict, xml: Path, precision: str) -> tuple[bool, str]:
    from wildspace.detect.network_io import probe_batch

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    outputs = find_head_outputs(model)
    if len(outputs) != len(head["strides"]):
        return False, f"found {len(outputs)} head outputs for {len(head['strides'])} levels"
    cut = ov.Model(outputs, model.get_parameters(), "yolov5-head-logits")
    top = max(head["strides"])
    x = probe_batch(int(4 * top), int(5 * top), batch=1)
    errors = {}
    for p in dict.fromkeys(("f32", precision)):
        config = {"INFERENCE_PRECISION_HINT": p, "INFERENCE_NUM_THREADS": 1}
        whole = core.compile_model(model, "CPU", config)({0: x})[0]
        cut_out = core.compile_model(cut, "CPU", config)({0: x})
        decoded = decode_candidates([cut_out[i] for i in range(len(outputs))], head, None)[0]
        if decoded.shape != whole.shape[1:]:
            return False, f"decoded {decoded.shape} against the graph's {whole.shape[1:]}"
        errors[p] = err = float((np.abs(decoded - whole[0]) / (HEAD_ATOL + HEAD_RTOL * np.abs(whole[0]))).max())
        if not err <= 1:
            return False, f"{p}: decoding differs from the graph ({err:.2f}x the tolerance)"
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.xml")
    try:
        ov.save_model(cut, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return True, "decoding within " + ", ".join(f"{e:.3f}x the tolerance in {p}" for p, e in errors.items())
