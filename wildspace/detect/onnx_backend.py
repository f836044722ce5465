"""Exported ONNX Runtime backend for detector networks (CPU speed-up).

On CPU, eager PyTorch runs these convolution networks several times slower than ONNX
Runtime. A detector built with ``backend="onnx"`` exports its already-loaded, fused
network once (legacy TorchScript-based ``torch.onnx.export``, dynamic batch/height/width),
checks the exported graph against the eager network on probe batches (:func:`verify_export`),
and keeps it in a cache folder keyed by the
weights' sha256, the network kind and the torch/exporter versions. Later loads reuse the
file. Pre-processing (letterbox) and post-processing (NMS, box mapping) stay the same code
as the torch path, so the only difference is the network's floating-point arithmetic.

``backend="auto"`` picks ONNX Runtime on CPU when ``onnxruntime`` is installed and the export
verifies, unless a trustworthy measurement on this machine found it clearly slower than the
detector's own eager path (:func:`prefer_exported`); CUDA runs eager, with fp16 autocast.
The measurement (:func:`measure_speed`: interleaved rounds, best of each side, wall and CPU
seconds) is kept in the cache's report with the machine's fingerprint
(:func:`~wildspace.detect.cpu.machine_fingerprint`: CPU model and flags, cores, threads,
torch and onnxruntime versions) and taken again when that fingerprint changes or the saved
figure is implausibly low (a figure that favours the export is kept however large). A noisy
measurement (repeats that disagree) never locks in the slow path: it keeps the export, the
default fast path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from wildspace.atomic import write_text_atomic
from wildspace.detect.network_io import BackendUnavailable, T, nchw_float, probe_batch  # noqa: F401  (re-exported)
from wildspace.errors import UsageError

BACKENDS = ("torch", "onnx", "auto")
ONNX_OPSET = 17
EXPORT_FORMAT_VERSION = 1  # bump when the export recipe changes (invalidates caches)
PARITY_RTOL = 1e-3
PARITY_ATOL = 1e-3
NOISE_FACTOR = 4.0  # exported vs fp64 may be this many times eager fp32's own error
SPEED_PROBE_HW = (480, 640)  # where auto times exported vs eager (px)
SPEED_ROUNDS = 3  # interleaved eager/export rounds per measurement
AUTO_MARGIN = 1.15  # auto leaves the export only when eager PyTorch is this much faster
NOISE_SPREAD = 1.3  # a side whose rounds differ by more than this factor is noise, not a figure
# Below this a saved figure is a measuring accident. A huge figure is not re-measured: it says
# "keep the export", the safe choice, and eager PyTorch on a loaded machine really can be 40-50x
# slower on the probe (its OpenMP threads wait for descheduled ones), which used to make every
# command under load measure again (~20 CPU-s each).
MIN_PLAUSIBLE_SPEEDUP = 0.05
SPEED_RECORD_VERSION = 1

log = logging.getLogger(__name__)


def check_backend(name: str) -> str:
    """Return ``name`` if it is a known backend, else raise ``ValueError`` listing the choices."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'; choose from {', '.join(BACKENDS)}")
    return name


def onnx_runtime_available() -> bool:
    """Whether ``onnxruntime`` (and ``onnx`` for export) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(requested: str, device: str) -> str:
    """The backend to try for ``requested`` on ``device``: ``torch`` or ``onnx``.

    Raises:
        BackendUnavailable: ``onnx`` was asked for on a GPU, or onnxruntime is missing.
    """
    check_backend(requested)
    on_cpu = str(device).startswith("cpu")
    if requested == "auto":
        return "onnx" if on_cpu and onnx_runtime_available() else "torch"
    if requested == "onnx":
        if not on_cpu:
            raise BackendUnavailable(f"backend 'onnx' runs on the CPU only (device is {device}); "
                                     "use backend 'torch' on GPUs")
        if not onnx_runtime_available():
            raise BackendUnavailable("backend 'onnx' needs the onnxruntime and onnx packages "
                                     "(pip install onnxruntime onnx)")
    return requested


def cache_key(weights_sha256: str, kind: str) -> str:
    """File stem for an exported network: weights hash + kind + the exporting versions."""
    from importlib.metadata import version

    # the installed torch's version, read without importing torch (the exported path never does)
    versions = f"{kind}|{version('torch')}|opset{ONNX_OPSET}|v{EXPORT_FORMAT_VERSION}"
    return f"{weights_sha256[:16]}-{kind}-{hashlib.sha1(versions.encode()).hexdigest()[:10]}"


SPIN_KEY = "session.intra_op.allow_spinning"


class OnnxNetwork:
    """ONNX Runtime sessions over one exported network: ``float32 NCHW -> float32``.

    ``streams`` sessions share the ``threads`` (``threads // streams`` intra-op threads each)
    so that up to ``streams`` batches run at once from different threads (the pipeline does
    that for :attr:`streams` > 1): on few cores, two one-thread sessions spend less CPU per
    image than one two-thread session, which synchronises its threads at every operator."""

    runtime = "onnxruntime"
    precision = "fp32"

    def __init__(self, path: str | Path, threads: int | None = None, streams: int = 1):
        import queue

        import onnxruntime as ort

        from wildspace.detect.cpu import resolve_threads

        self.threads = resolve_threads(threads)  # the project's choice, not ORT's guess
        self.streams = max(1, min(int(streams), self.threads))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.threads // self.streams
        # Idle intra-op threads sleep instead of busy-waiting: on a few cores shared with the
        # decode threads the spinning is CPU time nobody gets (bench/bench_ort_spinning.py:
        # 0.81x CPU-s per image for yolov5n at 1280, 0.90x for yolov9c; the arithmetic is
        # the same, so the detections are too).
        opts.add_session_config_entry(SPIN_KEY, "0")
        self.path = Path(path)
        self.sessions = [ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
                         for _ in range(self.streams)]
        self.session = self.sessions[0]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for session in self.sessions:
            self._free.put(session)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a ``(B, 3, H, W)`` float32 batch (values 0-1)."""
        session = self._free.get()  # blocks while every session is busy
        try:
            return session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        finally:
            self._free.put(session)

    def apply(self, x: np.ndarray, reduce: Callable[[np.ndarray], T]) -> T:
        """``reduce`` of the output (ONNX Runtime hands each call a fresh array already)."""
        return reduce(self(x))

    def on_images(self, arr: np.ndarray) -> np.ndarray:
        """Run the network on a ``B x H x W x 3`` uint8 batch of letterboxed RGB images."""
        return self(nchw_float(arr))


def parity_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest ``|ours - reference| / (atol + rtol * |reference|)``; <= 1 means within tolerance."""
    if ours.shape != reference.shape:
        return float("inf")
    err = np.abs(ours.astype(np.float64) - reference) / (PARITY_ATOL + PARITY_RTOL * np.abs(reference))
    return float(err.max()) if err.size else 0.0


def export_network(module, path: Path, example_hw: tuple[int, int]) -> None:
    """Export ``module`` (``(B,3,H,W) -> tensor``) to ``path`` with dynamic B, H, W (atomic)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    example = torch.zeros(1, 3, *example_hw)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints from shapes
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["images"], output_names=["pred"],
                              dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                            "pred": {0: "batch"}})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _eager(module, x: np.ndarray, dtype) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module.to(dtype)(torch.from_numpy(x).to(dtype)).to(torch.float64).numpy()


def verify_export(net: OnnxNetwork, module, shapes: list[tuple[int, int]]) -> dict:
    """Compare the exported network with the eager one on probe batches of ``shapes``.

    Passes when, on every probe, the ONNX output is within :data:`PARITY_RTOL` /
    :data:`PARITY_ATOL` of eager fp32, or, for networks whose fp32 arithmetic is itself that
    noisy, no further from an fp64 run of the same network than :data:`NOISE_FACTOR` times
    eager fp32 is. Returns the measured errors (in units of the tolerance) and ``ok``.
    """
    import copy

    import torch

    module64 = None
    report: dict = {"ok": True}
    for h, w in shapes:
        x = probe_batch(h, w)
        ours, fp32 = net(x), _eager(module, x, torch.float32)
        row = {"vs_fp32": parity_error(ours, fp32)}
        if row["vs_fp32"] > 1.0:
            module64 = module64 or copy.deepcopy(module)
            fp64 = _eager(module64, x, torch.float64)
            row["vs_fp64"], row["fp32_vs_fp64"] = parity_error(ours, fp64), parity_error(fp32, fp64)
            row["ok"] = row["vs_fp64"] <= NOISE_FACTOR * max(row["fp32_vs_fp64"], 1.0)
        else:
            row["ok"] = True
        report[f"{h}x{w}"] = row
        report["ok"] &= row["ok"]
    module.float()
    return report


def measure_speed(net: OnnxNetwork, torch_forward: Callable[[np.ndarray], object],
                  hw: tuple[int, int] = SPEED_PROBE_HW, rounds: int = SPEED_ROUNDS) -> dict:
    """Time eager PyTorch against ONNX Runtime on one image of ``hw`` px.

    After one untimed call each, ``rounds`` rounds each time one eager and one exported call
    (interleaved, so a change of machine load hits both sides). Returns the speed record:
    ``speedup`` (best eager wall seconds / best exported), ``cpu_speedup`` (the same in
    process CPU seconds), ``spread`` (slowest / fastest round of the more erratic side),
    ``noisy`` (``spread > NOISE_SPREAD``), the machine ``fingerprint`` and the probe size.
    """
    from wildspace.detect.cpu import machine_fingerprint

    x = probe_batch(*hw, batch=1)
    walls: dict[str, list[float]] = {"torch": [], "onnx": []}
    cpus: dict[str, list[float]] = {"torch": [], "onnx": []}
    sides: dict[str, Callable[[np.ndarray], object]] = {"torch": torch_forward, "onnx": net}
    for fn in sides.values():
        fn(x)
    for _ in range(max(1, rounds)):
        for side, fn in sides.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn(x)
            walls[side].append(time.perf_counter() - t0)
            cpus[side].append(time.process_time() - c0)
    spread = max(max(v) / max(min(v), 1e-9) for v in walls.values())
    return {"version": SPEED_RECORD_VERSION,
            "speedup": min(walls["torch"]) / max(min(walls["onnx"]), 1e-9),
            "cpu_speedup": min(cpus["torch"]) / max(min(cpus["onnx"]), 1e-9),
            "spread": spread, "noisy": spread > NOISE_SPREAD, "rounds": max(1, rounds),
            "hw": list(hw), "fingerprint": machine_fingerprint(net.threads),
            "load_average": _load_average()}


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def speed_record_current(meta: dict, threads: int) -> bool:
    """Whether ``meta``'s speed record was measured on this machine as it is now (same
    fingerprint) and is a plausible figure; otherwise it is measured again."""
    from wildspace.detect.cpu import machine_fingerprint

    speed = meta.get("speed")
    if not isinstance(speed, dict) or speed.get("version") != SPEED_RECORD_VERSION:
        return False  # none, or a bare figure from before fingerprints (e.g. a busy machine's)
    figure = speed.get("speedup")
    if not isinstance(figure, (int, float)) or not figure >= MIN_PLAUSIBLE_SPEEDUP:
        return False
    return speed.get("fingerprint") == machine_fingerprint(threads)


def load_or_export(module, cache_dir: Path, key: str, probe_hw: tuple[int, int], stride: int,
                   torch_forward: Callable[[np.ndarray], object] | None = None,
                   runtime: dict | None = None, threads: int | None = None,
                   remeasure: bool = False, precision: str = "fp32") -> tuple:
    """The cached ONNX network for ``key`` and its report, exporting and verifying it first
    when absent.

    Args:
        module: the eval-mode torch network (``(B,3,H,W)`` float in ``[0, 1]`` -> one tensor).
        cache_dir: folder of exported files (``<key>.onnx`` + ``<key>.json`` report).
        probe_hw: a probe input size in px (multiples of ``stride``); a second, transposed
            shape checks that the dynamic height/width export is right.
        torch_forward: the detector's own eager forward (float32 NCHW batch); when given,
            a new export's report records a speed record (:func:`measure_speed`) at about
            :data:`SPEED_PROBE_HW` (``auto`` uses it).
        runtime: what a torch-free run of the export needs (:mod:`wildspace.detect.exported`);
            kept in the report as ``runtime``, added to older reports that lack it.
        threads: ONNX Runtime's intra-op threads (default :func:`~wildspace.detect.cpu.resolve_threads`).
        remeasure: on a cache hit, measure again when the saved speed record is not current
            (:func:`speed_record_current`); ``auto`` asks for this.
        precision: ``fp32`` returns the ONNX Runtime network; ``bf16`` the same verified
            export compiled by OpenVINO in bf16 (:mod:`wildspace.detect.openvino_backend`),
            with no speed record (there is no eager-vs-export choice to make for it).

    Raises:
        BackendUnavailable: the export failed or its outputs differ from the eager network's.
    """
    cache_dir = Path(cache_dir)
    onnx_path, meta_path = cache_dir / f"{key}.onnx", cache_dir / f"{key}.json"
    if precision == "bf16":
        remeasure, torch_forward = False, None
    if onnx_path.is_file() and meta_path.is_file():
        try:
            net, meta = exported_network(onnx_path, threads, precision=precision), json.loads(meta_path.read_text())
            changed = runtime is not None and meta.get("runtime") != runtime
            if changed:
                meta["runtime"] = runtime
            if remeasure and torch_forward is not None and not speed_record_current(meta, net.threads):
                _record_speed(meta, net, torch_forward, stride)
                changed = True
            if changed:
                write_text_atomic(meta_path, json.dumps(meta, indent=1))
            return net, meta
        except Exception as exc:  # a damaged cache entry: export again
            log.warning("cached export %s unusable (%s); exporting again", onnx_path, exc)
            onnx_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
    try:
        export_network(module, onnx_path, probe_hw)
    except Exception as exc:  # the exporter raises many kinds; any failure means "not available"
        raise BackendUnavailable(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
    net = OnnxNetwork(onnx_path, threads)
    h, w = probe_hw
    report = verify_export(net, module, [(h, w), (w, h + 2 * stride)])  # dynamic H and W
    if not report["ok"]:
        onnx_path.unlink(missing_ok=True)
        raise BackendUnavailable(f"exported ONNX network differs from PyTorch beyond the parity "
                                 f"tolerance (rtol {PARITY_RTOL}, atol {PARITY_ATOL}): {report}")
    meta = {"key": key, "parity": report, "rtol": PARITY_RTOL, "atol": PARITY_ATOL,
            "noise_factor": NOISE_FACTOR, "opset": ONNX_OPSET}
    if runtime is not None:
        meta["runtime"] = runtime
    if torch_forward is not None:
        _record_speed(meta, net, torch_forward, stride)
    write_text_atomic(meta_path, json.dumps(meta, indent=1))
    log.info("exported %s: %s", onnx_path, meta)
    return (exported_network(onnx_path, threads, precision=precision) if precision != "fp32" else net), meta


def exported_network(path: Path, threads: int | None = None, streams: int = 1, precision: str = "fp32",
                     head: dict | None = None):
    """The runtime for an exported network: ONNX Runtime for ``fp32``, OpenVINO for ``bf16``
    (with ``head``, a legacy YOLOv5 head record, OpenVINO runs the graph up to the head's
    convolutions where it can: :mod:`wildspace.detect.yolov5_head`)."""
    if precision == "bf16":
        from wildspace.detect.openvino_backend import OpenVinoNetwork

        return OpenVinoNetwork(path, threads, streams, head=head)
    return OnnxNetwork(path, threads, streams)


def _record_speed(meta: dict, net: OnnxNetwork, torch_forward: Callable, stride: int) -> None:
    h, w = (-(-v // stride) * stride for v in SPEED_PROBE_HW)  # rounded up to whole strides
    meta["speed"] = measure_speed(net, torch_forward, (h, w))
    meta["speedup_vs_torch"] = meta["speed"]["speedup"]  # the figure, for people reading the report
    log.info("export vs eager torch: %s", meta["speed"])


def prefer_exported(requested: str, meta: dict) -> bool:
    """Whether to run the exported network: always for ``onnx``. For ``auto`` too, unless
    its speed record is a clean measurement (not noisy) in which eager PyTorch was at least
    :data:`AUTO_MARGIN` times faster; ratios within that margin, and noisy figures, keep
    the export (the default fast path: it also starts without PyTorch). Whether the record
    is current is the caller's check (:func:`speed_record_current`)."""
    if requested == "onnx":
        return True
    speed = meta.get("speed") or {}
    if speed.get("noisy"):
        return True
    return float(speed.get("speedup", 1.0)) * AUTO_MARGIN >= 1.0


def eager_precision(precision: str, backend: str, device: str) -> str:
    """The precision a detector runs: ``bf16`` (CPU only; with ``backend="onnx"`` it needs
    openvino, else :class:`BackendUnavailable`) or ``fp32``."""
    if precision not in ("fp32", "bf16"):
        raise UsageError(f"a detector runs fp32 or bf16, not '{precision}'")
    if precision == "bf16":
        from wildspace.detect.cpu import openvino_available

        if not str(device).startswith("cpu"):
            raise BackendUnavailable(f"precision bf16 is a CPU path (device is {device})")
        if backend == "onnx" and not openvino_available():
            raise BackendUnavailable("precision bf16 with backend onnx runs the export through OpenVINO "
                                     "(pip install openvino); ONNX Runtime has no fast CPU bf16. Use "
                                     "backend torch for eager bf16, or precision fp32")
    return precision


def bf16_on_export(precision: str, backend: str) -> bool:
    """Whether a ``precision`` detector with ``backend`` runs bf16 through OpenVINO over the
    export (else bf16 is eager PyTorch autocast)."""
    from wildspace.detect.precision import bf16_runtime

    return precision == "bf16" and bf16_runtime(backend) == "openvino"


def choose_network(requested: str, device: str, export: Callable[[], tuple], precision: str = "fp32") -> tuple:
    """``(exported network or None, backend name, export report or None)`` for a detector
    asked for ``requested``.

    ``export()`` returns ``(network, meta)``; it runs only when ONNX applies. ``onnx`` raises
    :class:`BackendUnavailable` when the export cannot be used; ``auto`` falls back to torch.
    A ``bf16`` export (OpenVINO) is always preferred to eager PyTorch: eager bf16 is the
    slower path and fails the parity rule.
    """
    if resolve_backend(requested, device) != "onnx":
        return None, "torch", None
    try:
        network, meta = export()
    except BackendUnavailable as exc:
        if requested == "onnx":
            raise
        log.warning("backend auto: using torch, %s", exc)
        return None, "torch", {"error": str(exc)}
    if precision == "bf16" or prefer_exported(requested, meta):
        return network, "onnx", meta
    log.info("backend auto: eager torch, the export measured %.2fx", (meta.get("speed") or {}).get("speedup", 0))
    return None, "torch", meta


def single_output(network):
    """Wrap a torch network so that it returns only its first output (the decoded
    predictions), as ONNX export needs one tensor."""
    import torch

    class SingleOutput(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            y = self.net(x)
            return y[0] if isinstance(y, (list, tuple)) else y

    return SingleOutput(network).eval()


def default_export_dir() -> Path:
    """``<WILDSPACE_HOME>/exported``: where exported networks are cached by default."""
    from wildspace.settings import load_settings

    return load_settings().home / "exported"


def no_grad(fn: Callable):
    """``fn`` run under ``torch.inference_mode``, returning a NumPy-convertible result."""
    import torch

    def run(x):
        with torch.inference_mode():
            return fn(x)

    return run
