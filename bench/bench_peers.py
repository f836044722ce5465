"""wildspace's default ``detect`` against peers' batch runners on the same weights and images,
whole processes: wall, CPU-seconds per image and peak RSS (``wait4``), best and median of
``--repeat`` interleaved runs, with the load average.

Peers run from a bench-only virtualenv (never a project dependency), given by
``--peer-python``. Building one offline-friendly on top of the project's venv (so torch and
ultralytics are not downloaded again)::

    python3 -m venv /tmp/peers && echo "$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')" \\
        > "$(/tmp/peers/bin/python -c 'import site; print(site.getsitepackages()[0])')/wildspace-venv.pth"
    /tmp/peers/bin/pip install --no-deps megadetector==10.0.28 megadetector-utils==10.0.28 \\
        jsonpickle humanfriendly fastquadtree send2trash clipboard dill
    /tmp/peers/bin/pip install --no-deps PytorchWildlife==1.3.0 supervision==0.23.0 wget chardet \\
        omegaconf antlr4-python3-runtime==4.9.3 soundfile defusedxml torchaudio librosa lazy_loader \\
        yolov5 seaborn lightning tensorboard absl-py   # PW imports them all; none is run here

MegaDetector's ``run_detector_batch`` runs with its own defaults (``--ncores 1``, no image
queue) and ``model_type=ultralytics`` for ultralytics checkpoints. Its legacy-YOLOv5 path needs
the ``ultralytics-yolov5`` package, whose build downloads files, so it cannot be installed
here; a peer that is missing is reported and skipped. Pytorch-Wildlife 1.3 runs
``MegaDetectorV6.batch_image_detection`` (batch 16, its default) through
``peer_pytorchwildlife.py``; it needs a torchaudio matching torch only to import. Agreement is MegaDetector's boxes vs
wildspace's at conf >= 0.2 (``wildspace.detect.parity``).

    python bench/bench_peers.py --peer-python /tmp/peers/bin/python [--ultralytics yolov9c.yaml] \\
        [--image-size 640] [--images 24] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cli import WORKING_THRESHOLD, detections_by_file, run_line, summary  # noqa: E402
from common import (  # noqa: E402
    SCRATCH,
    calibrated_ultralytics_checkpoint,
    camera_trap_images,
    load_average,
    machine,
    measured_run,
    setup_env,
)


def has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--ultralytics", default="yolov9c.yaml")
    src.add_argument("--weights", type=Path, help="a legacy YOLOv5 checkpoint instead")
    ap.add_argument("--peer-python", required=True, help="python of the bench-only venv with the peers")
    ap.add_argument("--image-size", type=int, default=640)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    setup_env()
    from wildspace.detect.parity import detections_within_tolerance

    images = camera_trap_images()[:args.images]
    n = len(images)
    weights = args.weights or calibrated_ultralytics_checkpoint(
        args.ultralytics, SCRATCH / f"calibrated-{Path(args.ultralytics).stem}.pt", camera_trap_images())
    work = SCRATCH / "peers"
    work.mkdir(parents=True, exist_ok=True)
    listing = work / "images.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    common = ["--image-size", str(args.image_size), "--threshold", str(args.threshold)]
    ours = [sys.executable, "-m", "wildspace", "detect", "--weights", str(weights), *common,
            "-o", str(work / "wildspace.json"), *map(str, images)]
    sides = {"wildspace detect (default)": (ours, work / "wildspace.json")}
    if has_module(args.peer_python, "megadetector.detection.run_detector_batch"):
        md = [args.peer_python, "-m", "megadetector.detection.run_detector_batch", str(weights), str(listing),
              str(work / "megadetector.json"), "--image_size", str(args.image_size),
              "--threshold", str(args.threshold)]
        if not args.weights:
            md += ["--detector_options", "model_type=ultralytics"]
        sides["MegaDetector run_detector_batch"] = (md, work / "megadetector.json")
    else:
        print("MegaDetector: not installed in --peer-python; skipped")
    if args.weights:
        print("Pytorch-Wildlife: its legacy MDv5 path needs the yolov5 package; skipped for --weights")
    elif has_module(args.peer_python, "PytorchWildlife.models.detection"):
        folder = work / "images"  # Pytorch-Wildlife reads a folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for p in images:
            (folder / p.name).symlink_to(p)
        pw = [args.peer_python, str(Path(__file__).resolve().parent / "peer_pytorchwildlife.py"), str(weights),
              str(folder), str(work / "pytorchwildlife.json"), *common]
        sides["Pytorch-Wildlife batch_image_detection"] = (pw, work / "pytorchwildlife.json")
    else:
        print("Pytorch-Wildlife: not installed in --peer-python; skipped")
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{n} real camera-trap images, {Path(weights).name} at {args.image_size} px, threshold {args.threshold}")
    measured_run(ours)  # untimed: makes or checks the cached export
    runs: dict[str, list] = {k: [] for k in sides}
    for i in range(args.repeat):
        for name, (cmd, _) in sides.items():
            runs[name].append(measured_run(cmd))
            print(run_line(f"{name} run {i + 1}", runs[name][-1], n), flush=True)
    for name in sides:
        print(summary(name, runs[name], n))
    base = "wildspace detect (default)"
    ours_dets = detections_by_file(sides[base][1])
    for name, (_, out) in sides.items():
        if name == base:
            continue
        wall = statistics.median(r.wall for r in runs[name]) / statistics.median(r.wall for r in runs[base])
        cpu = statistics.median(r.cpu for r in runs[base]) / statistics.median(r.cpu for r in runs[name])
        theirs = detections_by_file(out)
        agree = sum(detections_within_tolerance(ours_dets[k], theirs.get(k, ()), WORKING_THRESHOLD)
                    for k in ours_dets)
        print(f"{name} / wildspace: median wall {wall:.2f}x, CPU-s/image wildspace / peer {cpu:.2f}; "
              f"images agreeing at conf >= {WORKING_THRESHOLD}: {agree}/{len(ours_dets)}")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
