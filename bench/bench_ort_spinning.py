"""ONNX Runtime thread spinning: CPU-seconds per image of the default ``detect`` command with
ONNX Runtime's intra-op threads allowed to spin (ONNX Runtime's own default, "1") vs
``session.intra_op.allow_spinning = "0"`` (idle threads sleep; wildspace's default since
this benchmark measured it).

Spinning threads busy-wait for the next piece of work; on a machine where decode threads
and other jobs want the same cores, that waiting is CPU time nobody gets. wildspace's
detector code is not changed: each measured run is a fresh process that replaces
``onnxruntime.InferenceSession`` with a subclass overriding the session option, then
runs ``wildspace.cli.main(["detect", ...])``, the same command as ``bench/bench_cli.py``'s
default run. Runs alternate between the two settings; CPU seconds, wall and peak RSS come from
``wait4`` per process. ``--network-only`` times just the network over the letterboxed images
(sessions built here on the cached export, batches of 4), without decode or start-up.

    python bench/bench_ort_spinning.py --weights ../shared/data/weights/yolov5n.pt --image-size 1280
    python bench/bench_ort_spinning.py --ultralytics yolov9c.yaml --image-size 640 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SCRATCH,
    calibrated_ultralytics_checkpoint,
    camera_trap_images,
    load_average,
    machine,
    measured_run,
    setup_env,
)

SPIN_KEY = "session.intra_op.allow_spinning"


def patch_onnxruntime(spinning: str) -> None:
    """Make every later ``onnxruntime.InferenceSession`` carry ``allow_spinning = spinning``
    ("default" leaves wildspace's own setting)."""
    if spinning == "default":
        return
    import onnxruntime as ort

    base = ort.InferenceSession

    class Session(base):
        def __init__(self, path, sess_options=None, *a, **kw):
            opts = sess_options or ort.SessionOptions()
            opts.add_session_config_entry(SPIN_KEY, spinning)
            super().__init__(path, opts, *a, **kw)

    ort.InferenceSession = Session


def child_detect(spinning: str, argv: list[str]) -> int:
    patch_onnxruntime(spinning)
    from wildspace.cli import main

    return main(argv)


def child_network(spinning: str, onnx_path: str, size: int, images: list[str]) -> int:
    """Letterbox ``images`` as the exported detector does, then time only the network."""
    import json

    import numpy as np

    patch_onnxruntime(spinning)
    from wildspace.detect.letterbox import letterbox, stride_letterbox
    from wildspace.detect.onnx_backend import OnnxNetwork
    from wildspace.media.images import load_image

    rt = json.loads(Path(onnx_path).with_suffix(".json").read_text())["runtime"]
    stride = int(rt["stride"])
    groups: dict = {}
    for p in images:
        image = load_image(p)
        padded = (letterbox(image, size, stride)[0] if rt["family"] == "yolov5-legacy"
                  else stride_letterbox(image, size, stride))
        groups.setdefault(padded.shape, []).append(padded)
    net = OnnxNetwork(onnx_path)
    import resource
    import time

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    batches = [np.stack(g[i:i + 4]) for g in groups.values() for i in range(0, len(g), 4)]
    net.on_images(batches[0])  # warm-up
    c0, t0 = cpu(), time.perf_counter()
    for b in batches:
        net.on_images(b)
    print(f"NETWORK {time.perf_counter() - t0:.3f} {cpu() - c0:.3f}", file=sys.stderr)
    return 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child-detect":
        return child_detect(sys.argv[2], sys.argv[3:])
    if len(sys.argv) > 2 and sys.argv[1] == "--child-network":
        return child_network(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--ultralytics", default="yolov9c.yaml")
    src.add_argument("--weights", type=Path)
    ap.add_argument("--image-size", type=int, default=640)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--network-only", action="store_true")
    args = ap.parse_args()
    import os
    import shutil

    # a home of its own (bench_cli.py empties its export cache), seeded with exports made there
    os.environ.setdefault("WILDSPACE_HOME", str(SCRATCH / "home-spinning"))
    setup_env()
    cache = Path(os.environ["WILDSPACE_HOME"]) / "exported"
    cache.mkdir(parents=True, exist_ok=True)
    for f in (SCRATCH / "home" / "exported").glob("*"):
        if f.is_file() and not (cache / f.name).exists():
            shutil.copy2(f, cache / f.name)
    images = camera_trap_images()[:args.images]
    n = len(images)
    weights = args.weights or calibrated_ultralytics_checkpoint(
        args.ultralytics, SCRATCH / f"calibrated-{Path(args.ultralytics).stem}.pt", camera_trap_images())
    py, me = sys.executable, str(Path(__file__).resolve())
    out = SCRATCH / "spinning.json"
    detect = ["detect", "--weights", str(weights), "--image-size", str(args.image_size),
              "--threshold", str(args.threshold), "-o", str(out), *map(str, images)]
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{n} images, {Path(weights).name} at {args.image_size} px, "
          f"{'network only' if args.network_only else 'whole default detect command'}", flush=True)
    onnx_path = None
    if args.network_only:
        # the first default run leaves the export in the cache; find the one for these weights
        measured_run([py, me, "--child-detect", "default", *detect])
        import hashlib

        sha = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
        cached = sorted(cache.glob(f"{sha[:16]}-*.onnx"), key=lambda p: p.stat().st_mtime)
        if not cached:
            raise SystemExit("no cached export: the default run did not choose ONNX Runtime")
        onnx_path = str(cached[-1])
    else:
        measured_run([py, me, "--child-detect", "default", *detect])  # export once, untimed
    rows: dict[str, list] = {"1": [], "0": []}
    for i in range(args.repeat):
        for spinning in rows:
            if args.network_only:
                m = measured_run([py, me, "--child-network", spinning, onnx_path, str(args.image_size),
                                  *map(str, images)])
                wall, cpu = map(float, m.stderr.split("NETWORK")[1].split())
            else:
                m = measured_run([py, me, "--child-detect", spinning, *detect])
                wall, cpu = m.wall, m.cpu
            rows[spinning].append((wall, cpu / n, m.rss_mib, m.load))
            print(f"  run {i + 1}, allow_spinning={spinning}: {wall:6.1f} s wall, {cpu / n:.3f} CPU-s/image, "
                  f"peak RSS {m.rss_mib:.0f} MiB, load {m.load[0]:.1f} -> {m.load[1]:.1f}", flush=True)
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rows.items()}
    for k, (w, c) in med.items():
        print(f"allow_spinning={k}: median wall {w:.1f} s, median {c:.3f} CPU-s/image "
              f"(best {min(r[1] for r in rows[k]):.3f})")
    print(f"no spinning / spinning: CPU-s {med['0'][1] / med['1'][1]:.2f}x, "
          f"wall {med['0'][0] / med['1'][0]:.2f}x; load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
