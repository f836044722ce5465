"""Whole commands, as a user runs them: ``python -m wildspace detect`` vs the reference
per-file ultralytics predictor script, same weights, same images, start-up and model load
included; then their outputs compared image by image.

With ``--weights`` a legacy YOLOv5 checkpoint is timed against ``bench/reference_loop.py``
(the per-image decode -> letterbox -> forward -> NMS loop) instead.

The default model is MDv6-c-shaped (``yolov9c.yaml``, MegaDetector v6 yolov9-c's architecture) with
random weights whose BatchNorm statistics are calibrated on real images (bench/common.py),
because no real MDv6 file can be downloaded here. wildspace runs with ``--backend onnx``;
its exported network is cached after the first run (that first run is reported too).

    python bench/bench_cli.py [--ultralytics yolov9c.yaml] [--image-size 640] [--threshold 0.005]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, SCRATCH, calibrated_ultralytics_checkpoint, camera_trap_images,  # noqa: E402
                    load_average, machine, setup_env)


WORKING_THRESHOLD = 0.2  # MegaDetector's typical threshold: boxes users look at


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def detections_by_file(path: Path) -> dict:
    from wildspace.types import Detection

    out = {}
    for im in json.loads(path.read_text())["images"]:
        out[Path(im["file"]).name] = tuple(
            Detection(int(d["category"]) - 1, d["conf"], tuple(d["bbox"])) for d in im.get("detections") or ())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--ultralytics", default="yolov9c.yaml", help="architecture yaml (MDv6-c: yolov9c.yaml)")
    src.add_argument("--weights", type=Path, help="a legacy YOLOv5 checkpoint instead (reference: "
                     "bench/reference_loop.py, the per-image loop)")
    ap.add_argument("--image-size", type=int, default=640)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--backends", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"])
    args = ap.parse_args()
    setup_env()
    from wildspace.detect.parity import detections_within_tolerance, identical_detections

    images = camera_trap_images()
    if args.weights:
        weights, script, what = args.weights, "bench/reference_loop.py", "legacy YOLOv5 checkpoint"
    else:
        weights = calibrated_ultralytics_checkpoint(
            args.ultralytics, SCRATCH / f"calibrated-{Path(args.ultralytics).stem}.pt", images)
        script, what = "bench/reference_predictor.py", f"{args.ultralytics} architecture"
    work = SCRATCH / "cli"
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    common = ["--image-size", str(args.image_size), "--threshold", str(args.threshold)]
    ref_cmd = [py, script, "--weights", str(weights), *common,
               "-o", str(work / "reference.json"), *map(str, images)]

    def ours_cmd(backend: str) -> list[str]:
        return [py, "-m", "wildspace", "detect", "--weights", str(weights), "--backend", backend, *common,
                "-o", str(work / f"wildspace-{backend}.json"), *map(str, images)]

    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{len(images)} real camera-trap images, {weights.name} ({what}), "
          f"{args.image_size} px, threshold {args.threshold}", flush=True)
    export_dir = Path(os.environ["WILDSPACE_HOME"]) / "exported"
    if "onnx" in args.backends:
        for f in export_dir.glob("*"):
            f.unlink()
        print(f"wildspace --backend onnx, first run (exports the network): {timed(ours_cmd('onnx')):.1f} s",
              flush=True)
    t_ref = timed(ref_cmd)
    print(f"reference ({script}): {t_ref:.1f} s", flush=True)
    ref = detections_by_file(work / "reference.json")
    for backend in args.backends:
        t = timed(ours_cmd(backend))
        ours = detections_by_file(work / f"wildspace-{backend}.json")
        same = sum(identical_detections(ref[k], ours[k]) for k in ref)
        close = sum(detections_within_tolerance(ref[k], ours[k], args.threshold) for k in ref)
        working = sum(detections_within_tolerance(ref[k], ours[k], WORKING_THRESHOLD) for k in ref)
        print(f"wildspace detect --backend {backend}: {t:.1f} s  ratio {t_ref / t:.2f}x  identical {same}/{len(ref)}"
              f"  within tolerance {close}/{len(ref)} (at conf >= {WORKING_THRESHOLD}: {working}/{len(ref)})"
              f"  ({sum(map(len, ref.values()))} reference detections)", flush=True)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
