"""bf16 detector networks on the CPU through OpenVINO, over the verified ONNX export.

ONNX Runtime has no fast bf16 convolutions on the CPU; OpenVINO's CPU plugin has (oneDNN
kernels for AVX-512 BF16 and AMX): it reads the same exported graph that ONNX Runtime runs
(:mod:`wildspace.detect.onnx_backend`: exported once, verified against eager PyTorch) and,
with ``INFERENCE_PRECISION_HINT=bf16``, runs convolutions and matrix products in bf16 with
fp32 accumulation, the outputs in fp32. The letterbox, NMS and box mapping stay the
project's NumPy code, so precision is the only difference from the fp32 export.

The input stays the float32 ``NCHW`` batch of the other runtimes (pixels / 255 in fp32),
handed to OpenVINO without a copy. Letting OpenVINO take the uint8 pixels and divide them
itself (its pre-processing) was ~8 % faster but is another bf16 rounding (the scale is
folded into the first convolution): it failed the parity rule on one real yolov5n box at
1280 (7/8), so it is not used.

Whether a user gets this path by default is decided in :mod:`wildspace.detect.precision`
(parity on real weights, and the CPU's instructions).
"""

from __future__ import annotations

import queue
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from wildspace.detect.network_io import BackendUnavailable, T, nchw_float


class OpenVinoNetwork:
    """An exported ONNX network compiled by OpenVINO for the CPU in bf16: ``float32 NCHW -> float32``.

    Same interface as :class:`~wildspace.detect.onnx_backend.OnnxNetwork`. ``streams``
    infer requests over one compiled model (OpenVINO splits the ``threads`` between its
    streams) let up to ``streams`` batches run at once from different threads; OpenVINO
    releases the GIL while it infers. The compiled network is cached in ``cache_dir``
    (default: ``openvino-cache`` beside the export, OpenVINO's own model cache, keyed by the
    graph, the settings and OpenVINO's version): compiling MDv6-c takes ~0.7 s, loading it
    from the cache ~0.1 s, which matters for a command over a few dozen images.
    """

    runtime = "openvino"
    precision = "bf16"
    # images per forward pass. Two one-thread streams with single images were the fastest
    # on 2 cores (2026-12-03, network alone over the 24 bench images' shapes, bf16): yolov5n
    # at 1280 1.9 s against 2.2-2.5 s for one two-thread request (single images) and 2.6-2.8 s
    # for it with batches of 4; yolov9c at 640 0.20-0.21 s per image against 0.21-0.22 (one
    # request, batches of 4) and 0.23-0.25 (two streams, batches of 2)
    batch_size = 1

    def __init__(self, path: str | Path, threads: int | None = None, streams: int = 1,
                 cache_dir: str | Path | None = None, head: dict | None = None):
        from wildspace.detect.cpu import openvino_available, resolve_threads

        if not openvino_available():
            raise BackendUnavailable("precision bf16 on the exported network needs the openvino package "
                                     "(pip install openvino)")
        ov = import_openvino()
        self.path = Path(path)
        self.threads = resolve_threads(threads)
        self.streams = max(1, min(int(streams), self.threads))
        config = {"INFERENCE_PRECISION_HINT": "bf16",
                  "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": self.streams,
                  # decode threads share these cores: do not pin OpenVINO's threads to them
                  "ENABLE_CPU_PINNING": False}
        cache = Path(cache_dir) if cache_dir is not None else self.path.parent / "openvino-cache"
        graph = self.path
        # a legacy YOLOv5 export whose head can be cut off: its rows are decoded in NumPy,
        # only where objectness passes (wildspace.detect.yolov5_head)
        self.head: dict | None = None
        if head is not None:
            from wildspace.detect.yolov5_head import head_network

            cut = head_network(ov, self.path, head, self.precision)
            if cut is not None:
                graph, self.head = cut, head
        try:
            self.compiled = _compile(ov, graph, config, cache)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise BackendUnavailable(f"OpenVINO cannot compile {self.path.name}: {str(exc)[:300]}") from exc
        # OpenVINO's Python binding sets up its NumPy bridge (a C++ function-local static that
        # waits for the GIL) on first use: two threads making their first call at once could
        # deadlock (one holds the static and waits for the GIL, the other holds the GIL and waits
        # for the static; 2 of 20 fresh processes hung here). Set it up now, on this one thread.
        ov.Type.f32.to_dtype()
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.streams):
            self._free.put(self.compiled.create_infer_request())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a ``(B, 3, H, W)`` float32 batch (values 0-1)."""
        # a copy: the request's output buffer is reused by its next call
        return self.apply(x, lambda out: np.array(out, dtype=np.float32, copy=True))

    def apply(self, x: np.ndarray, reduce: Callable[[np.ndarray], T]) -> T:
        """``reduce(output)`` on the request's own output buffer, before the request is reused.

        ``reduce`` must not keep a view of ``output`` (NMS keeps copies of the few candidate
        rows). This spares a copy of the whole raw output, 26 MB per yolov5n image at
        1280 px (a few ms of memory traffic; the command's page faults did not change).
        With a cut head the output is decoded first, every row (the whole graph's output)."""
        if self.head is not None:
            return self.apply_rows(x, None, lambda rows: reduce(np.stack(rows)))
        return self._infer(x, lambda outputs: reduce(outputs[0]))

    def apply_rows(self, x: np.ndarray, conf_threshold: float | None,
                   reduce: Callable[[list[np.ndarray]], T]) -> T:
        """With a cut head: ``reduce(rows)``, one ``(n, 5 + nc)`` array per image of the rows
        whose objectness is above ``conf_threshold``, decoded in NumPy
        (:func:`~wildspace.detect.yolov5_head.decode_candidates`)."""
        from wildspace.detect.yolov5_head import decode_candidates

        if self.head is None:
            raise ValueError("this network has no cut head")
        head = self.head
        return self._infer(x, lambda maps: reduce(decode_candidates(maps, head, conf_threshold)))

    def _infer(self, x: np.ndarray, reduce: Callable[[list[np.ndarray]], T]) -> T:
        """``reduce(outputs)`` on the request's own output buffers, before the request is reused."""
        request = self._free.get()  # blocks while every request is busy
        try:
            # shared, not copied: infer is synchronous and returns before x can change
            request.infer({0: np.ascontiguousarray(x, dtype=np.float32)}, share_inputs=True)
            return reduce([request.get_output_tensor(i).data for i in range(len(self.compiled.outputs))])
        finally:
            self._free.put(request)

    def on_images(self, arr: np.ndarray) -> np.ndarray:
        """Run the network on a ``B x H x W x 3`` uint8 batch of letterboxed RGB images."""
        return self(nchw_float(arr))


def import_openvino():
    """``import openvino``, without its usage telemetry.

    On import, OpenVINO's model converter sends a Google Analytics event and writes a client
    id and a usage count under ``~/intel``, unless a consent file says no or ``CI=true``
    (``openvino_telemetry``: no file counts as consent). A field station's or an
    investigator's machine must not report its use, and the sender's thread also held the
    process open at exit. When ``openvino_telemetry`` cannot be imported OpenVINO falls back
    to its own no-op stub; it is made unimportable while OpenVINO imports (only when neither
    was imported before), then left as it was.
    """
    hide = "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        import openvino
    finally:
        if hide and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]
    return openvino


def _compile(ov, path: Path, config: dict, cache: Path):
    """Compile ``path`` for the CPU through OpenVINO's model cache in ``cache``; without the
    cache when it cannot be used (e.g. a read-only folder)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(cache)})
        return core.compile_model(str(path), "CPU", config)
    except (OSError, RuntimeError):
        core = ov.Core()
        return core.compile_model(core.read_model(str(path)), "CPU", config)
