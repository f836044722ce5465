"""Video throughput: wildspace's video pipeline vs decoding every frame.

The reference loop is what Pytorch-Wildlife-style video code does: decode every frame to an
RGB array, then run the detector frame by frame (batch of 1) on the frames it keeps.
wildspace's ``detect_video`` decodes in a background thread, converts and letterboxes only
the sampled frames, and runs them in batches. Both use the same detector object (same
weights, same backend) and the same sampling; detections are compared frame by frame.

    python bench/bench_video.py [--video ../shared/data/video/chimp.mp4] [--every 1 10] [--size 640]

Prints video frames covered per second (frames of the video / wall seconds) and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, load_average, machine, setup_env  # noqa: E402


def reference(det, path: Path, every: int, threshold: float) -> tuple[dict, int]:
    import av

    out, n = {}, 0
    with av.open(str(path)) as c:
        for n, frame in enumerate(c.decode(c.streams.video[0])):
            rgb = frame.to_ndarray(format="rgb24")  # every frame decoded to RGB
            if n % every == 0:
                (dets,) = det.run([det.prepare(rgb)], threshold)
                out[n] = dets
    return out, n + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=SHARED / "video" / "chimp.mp4")
    ap.add_argument("--weights", type=Path, default=SHARED / "weights" / "yolov5n.pt")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 10], help="sample every N-th frame")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    ap.add_argument("--threshold", type=float, default=0.1)
    args = ap.parse_args()
    setup_env()

    from wildspace.detect.factory import build_detector
    from wildspace.detect.parity import identical_detections
    from wildspace.detect.video import detect_video
    from wildspace.media.video import Sampling

    det = build_detector(args.weights, input_size=args.size, backend=args.backend)
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{args.video.name}, {args.weights.name} at {args.size} px, backend {args.backend}, "
          f"batch {args.batch_size}", flush=True)
    reference(det, args.video, 50, args.threshold)  # warm-up (decoder, network primitives)
    for every in args.every:
        t0 = time.perf_counter()
        ref, total = reference(det, args.video, every, args.threshold)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = detect_video(det, args.video, args.video.name, args.threshold,
                         Sampling(every_n_frames=every), batch_size=args.batch_size)
        t = time.perf_counter() - t0
        ours = {n: tuple(d for d in r.detections if d.frame_number == n) for n in r.frames_processed}
        same = sum(identical_detections(ref[n], [d.__class__(d.class_id, d.conf, d.bbox_xywh_norm)
                                                 for d in ours.get(n, ())]) for n in ref)
        print(f"every {every:>2} frame(s): reference {total / t_ref:7.1f} video frames/s ({t_ref:.1f} s)  "
              f"wildspace {total / t:7.1f} video frames/s ({t:.1f} s)  ratio {t_ref / t:.2f}x  "
              f"identical {same}/{len(ref)} sampled frames", flush=True)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
