"""Whole commands, as a user runs them: the DEFAULT ``python -m wildspace detect`` (no
backend or precision flags) vs the reference per-file ultralytics predictor script, same
weights, same images, start-up and model load included; then their outputs compared image
by image.

With ``--weights`` a legacy YOLOv5 checkpoint is timed against ``bench/reference_loop.py``
(the per-image decode -> letterbox -> forward -> NMS loop) instead.

Each side runs ``--repeat`` times, interleaved (reference, wildspace, reference, ...), as
separate processes. Per run: wall seconds, CPU seconds (user + system of that process, from
the kernel's ``wait4`` accounting, so other jobs on a shared machine do not count), peak RSS
and the load average. Best and median are printed, with the ratios the issue asks for: wall
(reference / wildspace, target >= 4x) and CPU-seconds per image (wildspace / reference,
target <= 0.5). On a shared machine the CPU-seconds are the figure that matters; wall time
also depends on what else runs.

The default model is MDv6-c-shaped (``yolov9c.yaml``, MegaDetector v6 yolov9-c's architecture) with
random weights whose BatchNorm statistics are calibrated on real images (bench/common.py),
because no real MDv6 file can be downloaded here. Before the timed runs the export cache is
emptied and one default run is timed alone: a user's first run exports and verifies the
network (``--keep-export`` skips this).

    python bench/bench_cli.py [--ultralytics yolov9c.yaml] [--image-size 640] [--images 24] [--repeat 2]
    python bench/bench_cli.py --weights ../shared/data/weights/yolov5n.pt --image-size 1280
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SCRATCH,
    Measured,
    calibrated_ultralytics_checkpoint,
    camera_trap_images,
    load_average,
    machine,
    measured_run,
    setup_env,
)

WORKING_THRESHOLD = 0.2  # MegaDetector's typical threshold: boxes users look at


def detections_by_file(path: Path) -> dict:
    from wildspace.types import Detection

    out = {}
    for im in json.loads(path.read_text())["images"]:
        out[Path(im["file"]).name] = tuple(
            Detection(int(d["category"]) - 1, d["conf"], tuple(d["bbox"])) for d in im.get("detections") or ())
    return out


def run_line(label: str, m: Measured, n: int) -> str:
    return (f"  {label}: {m.wall:6.1f} s wall, {m.cpu:6.1f} CPU-s ({m.cpu / n:.2f} CPU-s/image), "
            f"peak RSS {m.rss_mib:6.0f} MiB, load {m.load[0]:.1f} -> {m.load[1]:.1f}")


def summary(name: str, runs: list[Measured], n: int) -> str:
    walls, cpus, rss = [r.wall for r in runs], [r.cpu / n for r in runs], [r.rss_mib for r in runs]
    loads = [x for r in runs for x in r.load]
    return (f"{name}: wall best {min(walls):.1f} s, median {statistics.median(walls):.1f} s; CPU-s/image best "
            f"{min(cpus):.2f}, median {statistics.median(cpus):.2f}; peak RSS best {min(rss):.0f} MiB, max "
            f"{max(rss):.0f} MiB ({len(runs)} runs, load average {min(loads):.1f}-{max(loads):.1f})")


def parity_line(ref: dict, ours: dict, threshold: float) -> str:
    from wildspace.detect.parity import detections_within_tolerance, identical_detections

    same = sum(identical_detections(ref[k], ours[k]) for k in ref)
    close = sum(detections_within_tolerance(ref[k], ours[k], threshold) for k in ref)
    working = sum(detections_within_tolerance(ref[k], ours[k], WORKING_THRESHOLD) for k in ref)
    return (f"identical {same}/{len(ref)}, within tolerance {close}/{len(ref)} (at conf >= {WORKING_THRESHOLD}: "
            f"{working}/{len(ref)}); {sum(map(len, ref.values()))} reference detections")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--ultralytics", default="yolov9c.yaml", help="architecture yaml (MDv6-c: yolov9c.yaml)")
    src.add_argument("--weights", type=Path, help="a legacy YOLOv5 checkpoint instead (reference: "
                     "bench/reference_loop.py, the per-image loop)")
    ap.add_argument("--image-size", type=int, default=640)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--images", type=int, default=24, help="how many of the shared camera-trap images (max 37)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each side (>= 2 for a median)")
    ap.add_argument("--also", nargs="*", default=[], choices=["onnx", "torch"],
                    help="also time `detect --backend X` (once each, after the default)")
    ap.add_argument("--keep-export", action="store_true", help="keep the export cache (no first-run timing)")
    args = ap.parse_args()
    setup_env()

    images = camera_trap_images()[:args.images]
    n = len(images)
    if n < 1:
        raise SystemExit("no camera-trap images found under ../shared/data/camera-trap")
    if args.weights:
        weights, script, what = args.weights, "bench/reference_loop.py", "legacy YOLOv5 checkpoint"
    else:
        weights = calibrated_ultralytics_checkpoint(
            args.ultralytics, SCRATCH / f"calibrated-{Path(args.ultralytics).stem}.pt", camera_trap_images())
        script, what = "bench/reference_predictor.py", f"{args.ultralytics} architecture"
    work = SCRATCH / "cli"
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    common = ["--image-size", str(args.image_size), "--threshold", str(args.threshold)]
    ref_cmd = [py, script, "--weights", str(weights), *common, "-o", str(work / "reference.json"), *map(str, images)]

    def ours_cmd(tag: str, flags: list[str]) -> list[str]:
        return [py, "-m", "wildspace", "detect", "--weights", str(weights), *flags, *common,
                "-o", str(work / f"wildspace-{tag}.json"), *map(str, images)]

    default_cmd = ours_cmd("default", ["--explain"])  # --explain only prints what runs and why
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{n} real camera-trap images, {weights.name} ({what}), {args.image_size} px, "
          f"threshold {args.threshold}", flush=True)
    print(f"default command: python -m wildspace detect --weights {weights.name} "
          f"--image-size {args.image_size} --threshold {args.threshold} -o OUT IMAGES... (no --backend/--precision)")
    if not args.keep_export:
        shutil.rmtree(Path(os.environ["WILDSPACE_HOME"]) / "exported", ignore_errors=True)  # + OpenVINO's cache
        first = measured_run(default_cmd)
        print(run_line("wildspace default, first run (exports, verifies and times the network)", first, n),
              flush=True)
    ref_runs, our_runs = [], []
    explain = ""
    for i in range(args.repeat):
        ref_runs.append(measured_run(ref_cmd))
        print(run_line(f"reference run {i + 1}", ref_runs[-1], n), flush=True)
        our_runs.append(measured_run(default_cmd))
        explain = explain or "\n".join("    " + ln for ln in our_runs[-1].stderr.splitlines()
                                       if ln.split(":")[0] in ("model", "runs", "backend onnx", "backend torch")
                                       or ln.startswith(("precision", "cpu:")))
        print(run_line(f"wildspace default run {i + 1}", our_runs[-1], n), flush=True)
    print("what the default ran (detect --explain):\n" + explain)
    ref = detections_by_file(work / "reference.json")
    print(summary(f"reference ({script})", ref_runs, n))
    print(summary("wildspace detect (default)", our_runs, n))
    best = min(r.wall for r in ref_runs) / min(r.wall for r in our_runs)
    med = statistics.median(r.wall for r in ref_runs) / statistics.median(r.wall for r in our_runs)
    cpu_best = min(r.cpu for r in our_runs) / min(r.cpu for r in ref_runs)
    cpu_med = statistics.median(r.cpu for r in our_runs) / statistics.median(r.cpu for r in ref_runs)
    print(f"wall ratio reference / default: best {best:.2f}x, median {med:.2f}x  (target >= 4x: "
          f"{'reached' if med >= 4 else 'NOT reached'})")
    print(f"CPU-s/image default / reference: best {cpu_best:.2f}, median {cpu_med:.2f}  (target <= 0.5: "
          f"{'reached' if cpu_med <= 0.5 else 'NOT reached'})")
    ours = detections_by_file(work / "wildspace-default.json")
    print(f"detections, default vs reference: {parity_line(ref, ours, args.threshold)}")
    for backend in args.also:
        m = measured_run(ours_cmd(backend, ["--backend", backend]))
        print(run_line(f"wildspace --backend {backend}", m, n))
        print(f"    wall ratio vs median reference {statistics.median(r.wall for r in ref_runs) / m.wall:.2f}x, "
              f"CPU ratio {m.cpu / statistics.median(r.cpu for r in ref_runs):.2f}; "
              f"{parity_line(ref, detections_by_file(work / f'wildspace-{backend}.json'), args.threshold)}")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
