"""Peak memory of a whole ``python -m wildspace detect`` run over 100 vs 10,000 images.

Results stream out of the pipeline and inputs are read lazily, so peak RSS should not grow
with the number of images (the issue's bar: 10,000 images <= 1.2x of 100). The images are
the shared camera-trap JPEGs scaled down to 320x240 (kept in a scratch folder, never in the
repository) and linked repeatedly into folders of 100 and 10,000 files. Each run is a fresh
process; its peak RSS is read from the kernel (``wait4`` rusage).

    python bench/bench_memory.py [--counts 100 10000] [--image-size 256] [--backend onnx]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRATCH, SHARED, camera_trap_images, load_average, machine, measured_run, setup_env  # noqa: E402


def small_images(folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in camera_trap_images():
        target = folder / p.name
        if not target.is_file():
            with Image.open(p) as im:
                im.convert("RGB").resize((320, 240)).save(target, quality=90)
        out.append(target)
    return out


def linked_folder(folder: Path, sources: list[Path], count: int) -> Path:
    if folder.is_dir() and sum(1 for _ in folder.iterdir()) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        f.unlink()
    for i in range(count):
        (folder / f"{i:05d}.jpg").symlink_to(sources[i % len(sources)])
    return folder


def peak_rss_mib(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (peak RSS in MiB, wall seconds)."""
    m = measured_run(cmd)
    return m.rss_mib, m.wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 10_000])
    ap.add_argument("--weights", type=Path, default=SHARED / "weights" / "yolov5n.pt")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    args = ap.parse_args()
    setup_env()
    sources = small_images(SCRATCH / "small-images")
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"{args.weights.name} at {args.image_size} px, backend {args.backend}, 320x240 JPEGs", flush=True)
    peaks = {}
    for count in [min(args.counts)] + list(args.counts):  # the first run warms caches / exports
        folder = linked_folder(SCRATCH / f"images-{count}", sources, count)
        cmd = [sys.executable, "-m", "wildspace", "detect", "--weights", str(args.weights),
               "--image-size", str(args.image_size), "--backend", args.backend,
               "-o", str(SCRATCH / f"memory-{count}.json"), str(folder)]
        peaks[count], wall = peak_rss_mib(cmd)
        print(f"{count:>6} images: peak RSS {peaks[count]:7.1f} MiB  ({wall:.1f} s, {count / wall:.1f} images/s)",
              flush=True)
    lo, hi = min(args.counts), max(args.counts)
    print(f"ratio peak RSS {hi} / {lo} images: {peaks[hi] / peaks[lo]:.3f}x; load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
