"""GPU throughput of an MDv5-shaped model (YOLOv5x6 legacy checkpoint, 1280 px): wildspace's
batch pipeline vs the reference per-image loop, the fraction of time the GPU was busy, and
where the time goes (the bottleneck).

The checkpoint has MDv5's architecture with random weights (no real MDv5 file can be
downloaded here); it is pickled exactly as MDv5 files are and loaded by the production
loader. Reference: per file decode -> letterbox -> forward (batch 1, fp32) -> NMS. Ours:
``detect_files`` with the batch size chosen from free GPU memory, fp16 autocast,
channels-last, pinned transfers, NMS on the GPU, decode threads ahead of the network.
GPU busy = the mean of ``nvidia-smi`` utilisation samples (share of time a kernel ran)
taken every 100 ms while each path runs.

    python bench/bench_gpu.py [--repeat 8] [--workers 12] [--variant x6] [--size 1280]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRATCH, camera_trap_images, load_average, machine, setup_env  # noqa: E402


class Utilisation:
    """Samples ``nvidia-smi`` GPU utilisation (percent) in a thread while active."""

    def __init__(self, index: int = 0):
        self.index, self.samples, self._stop = index, [], threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                self.samples.append(float(out.stdout.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else float("nan")


def mdv5_shaped(path: Path, variant: str) -> Path:
    if not path.is_file():
        import torch

        from wildspace.detect.yolov5_legacy import save_yolov5_checkpoint
        from wildspace.detect.yolov5_modules import Model, yolov5_config

        torch.manual_seed(0)
        model = Model(yolov5_config(variant, nc=3))
        model.names = ["animal", "person", "vehicle"]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_yolov5_checkpoint(model.eval(), path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="x6", help="YOLOv5 variant (MDv5: x6)")
    ap.add_argument("--size", type=int, default=1280)
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--workers", type=int, default=12, help="decode threads")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--threshold", type=float, default=0.005)
    args = ap.parse_args()
    setup_env()
    import torch

    from wildspace.detect.base import detect_images
    from wildspace.detect.batch_size import auto_batch_size
    from wildspace.detect.factory import build_detector
    from wildspace.detect.parity import detections_within_tolerance
    from wildspace.detect.pipeline import detect_files
    from wildspace.media.images import load_image

    weights = mdv5_shaped(SCRATCH / f"mdv5-shaped-yolov5{args.variant}.pt", args.variant)
    images = camera_trap_images()
    files = [(p, f"{i}/{p.name}") for i in range(args.repeat) for p in images]
    n = len(files)
    cuda = args.device.startswith("cuda")
    ours_det = build_detector(weights, input_size=args.size, device=args.device)  # fp16 autocast on CUDA
    ref_det = build_detector(weights, input_size=args.size, device=args.device)
    ref_det.half = False  # the reference runs fp32
    batch = auto_batch_size(ours_det)
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{n} images, yolov5{args.variant} (MDv5-shaped) at {args.size} px on {args.device}, "
          f"torch {torch.__version__}, auto batch size {batch}, {args.workers} decode threads", flush=True)
    for det in (ours_det, ref_det):  # warm-up: kernels, cudnn autotuning per shape
        detect_images(det, [load_image(p) for p in images[:4]], 0.5)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    sync()
    with Utilisation() as u_ref:
        t0 = time.perf_counter()
        ref = {name: detect_images(ref_det, [load_image(path)], args.threshold)[0] for path, name in files}
        sync()
        t_ref = time.perf_counter() - t0
    with Utilisation() as u_ours:
        t0 = time.perf_counter()
        ours = {r.file: r.detections for r in detect_files(ours_det, files, args.threshold,
                                                             batch_size=batch, workers=args.workers)}
        sync()
        t_ours = time.perf_counter() - t0
    close = sum(detections_within_tolerance(ref[k], ours[k] or (), args.threshold) for k in ref)
    print(f"reference per-image loop (fp32, batch 1): {n / t_ref:7.2f} images/s  GPU busy {u_ref.mean:5.1f}%")
    precision = "fp16 autocast" if ours_det.half else "fp32"
    print(f"wildspace pipeline ({precision}, batch {batch}): {n / t_ours:7.2f} images/s  GPU busy {u_ours.mean:5.1f}%  "
          f"ratio {t_ref / t_ours:.2f}x  within fp32 tolerance {close}/{n}", flush=True)

    # where the time goes: decode+letterbox alone (same threads) vs the network alone
    with ThreadPoolExecutor(args.workers) as pool:
        t0 = time.perf_counter()
        prepared = list(pool.map(lambda f: ours_det.prepare(load_image(f[0])), files))
        t_decode = time.perf_counter() - t0
    groups: dict = {}
    for p in prepared:
        groups.setdefault(p.key, []).append(p)
    sync()
    t0 = time.perf_counter()
    for group in groups.values():
        for i in range(0, len(group), batch):
            ours_det.run(group[i:i + batch], args.threshold)
    sync()
    t_net = time.perf_counter() - t0
    print(f"decode + letterbox alone ({args.workers} threads): {n / t_decode:7.2f} images/s")
    print(f"network + NMS alone (pre-decoded batches):  {n / t_net:7.2f} images/s")
    bottleneck = "JPEG decode + letterbox on the CPU" if t_decode > t_net else f"the network ({args.device})"
    print(f"bottleneck: {bottleneck} (end-to-end {n / t_ours:.2f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
