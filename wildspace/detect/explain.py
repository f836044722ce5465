"""What a built detector will run on this machine, and why (``detect --explain``)."""

from __future__ import annotations


def _speed_line(meta: dict) -> str:
    speed = meta.get("speed") or {}
    if not speed:
        return "no speed measurement saved"
    hw = "x".join(map(str, speed.get("hw", [])))
    line = (f"the export measured {speed['speedup']:.2f}x eager PyTorch's speed "
            f"(CPU seconds {speed.get('cpu_speedup', 0):.2f}x) on a {hw} probe on this machine")
    if speed.get("noisy"):
        line += f", a noisy figure (rounds differed {speed.get('spread', 0):.2f}x)"
    return line


def backend_reason(det, requested: str) -> str:
    """Why ``det`` runs the backend it runs, given the ``requested`` one."""
    from wildspace.detect.onnx_backend import AUTO_MARGIN

    meta = getattr(det, "export_meta", None) or {}
    if requested == det.backend:
        return "asked for"
    if requested != "auto":
        return f"{requested} asked for; {det.backend} is what this model can run"
    if getattr(det, "precision", "fp32") != "fp32":
        if det.backend == "onnx":
            return f"{det.precision} runs the verified ONNX export through OpenVINO (no eager-vs-export timing)"
        return f"{det.precision} runs eager PyTorch"
    if not str(getattr(det, "device", "cpu")).startswith("cpu"):
        return "auto on a GPU runs eager PyTorch"
    if getattr(det, "rtdetr", False):
        return "RT-DETR has no ONNX export"
    if "error" in meta:
        return f"the ONNX export is not usable: {meta['error']}"
    if det.backend == "onnx":
        return (f"auto keeps the verified ONNX Runtime export unless eager PyTorch is {AUTO_MARGIN:g}x "
                f"faster in a clean measurement; {_speed_line(meta)}")
    if meta:
        return f"eager PyTorch measured faster: {_speed_line(meta)}"
    return "onnxruntime is not installed"


def explain(det, requested_backend: str, requested_precision: str) -> list[str]:
    """Lines saying which network, backend, precision and threads ``det`` uses, and why."""
    from wildspace.detect.cpu import cpu_model, has_fast_bf16, has_fast_int8

    info = det.info
    runtime = getattr(getattr(det, "_onnx", None) or getattr(det, "network", None), "runtime", "")
    backend = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}.get(runtime, "PyTorch")
    lines = [
        f"model: {info.name} ({type(det).__name__}), input {info.input_size} px",
        f"runs: {backend} ({det.backend}), {getattr(det, 'precision', 'fp32')}, "
        f"{getattr(det, 'threads', '?')} threads on {getattr(det, 'device', 'cpu')}",
        f"backend {det.backend}: {backend_reason(det, requested_backend)}",
        f"precision {getattr(det, 'precision', 'fp32')} (asked {requested_precision}): "
        f"{getattr(det, 'precision_reason', 'fp32')}",
        f"cpu: {cpu_model()}; bf16 instructions (AMX/AVX-512 BF16): {'yes' if has_fast_bf16() else 'no'}; "
        f"int8 dot products (AMX/VNNI): {'yes' if has_fast_int8() else 'no'}",
    ]
    return lines
