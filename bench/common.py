"""Shared helpers for the benchmarks: the shared images, a scratch folder, the machine line,
and benchmark-only models of the real architectures.

Benchmarks never download: the legacy-YOLOv5 checkpoint comes from ``../shared/data``;
MDv6-shaped models are built from ultralytics' bundled yaml files (see
:func:`calibrated_ultralytics_checkpoint`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SCRATCH = Path(os.environ.get("WILDSPACE_BENCH_DIR", "/tmp/wildspace-bench"))


def setup_env() -> None:
    """Keep ultralytics offline with its settings, and wildspace's data dir, in the scratch folder."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(SCRATCH / "ultralytics"))
    os.environ.setdefault("WILDSPACE_HOME", str(SCRATCH / "home"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    compile_bytecode()


def compile_bytecode() -> None:
    """Write the project's ``.pyc`` files, as ``pip install`` does for an installed package.

    Timed commands then start as a user's do. Where ``PYTHONDONTWRITEBYTECODE`` is set (this
    sandbox sets it) Python never caches them, so every process would compile wildspace's
    modules from source first (~70 ms of a one-image ``detect``); the reference scripts
    import wildspace too and gain the same."""
    import compileall

    for folder in ("wildspace", "bench"):
        compileall.compile_dir(str(ROOT / folder), quiet=1)


def camera_trap_images() -> list[Path]:
    """The 37 shared camera-trap JPEGs (MegaDetector test set + ENA24), 1280x720 to 5152x3968."""
    return sorted(p for d in ("megadetector-test", "ena24-small")
                  for p in (SHARED / "camera-trap" / d).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def machine() -> str:
    """One line naming the CPU (and GPU when there is one), for the README tables."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if gpu:
            text += f", {gpu.splitlines()[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def calibrated_ultralytics_checkpoint(cfg: str, path: Path, images: list[Path], size: int = 320,
                                      class_bias: float = -8.0) -> Path:
    """An ultralytics model of the ``cfg`` architecture (e.g. ``yolov9c.yaml``, MDv6-c's),
    with random weights whose BatchNorm statistics are calibrated on real images.

    Plain random initialisations produce almost constant outputs (every box the same score),
    which tells nothing about NMS, batching or numerical parity. Re-estimating the BatchNorm
    running statistics on a few real camera-trap images makes the activations well scaled,
    so scores vary with the image content like a trained model's (``class_bias`` sets how
    many boxes pass a threshold). Saved as ultralytics saves checkpoints; built once.
    """
    if path.is_file():
        return path
    import cv2
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from wildspace.media.images import load_image

    torch.manual_seed(0)
    wrapper = YOLO(cfg)
    model = wrapper.model = DetectionModel(cfg, nc=3, verbose=False)
    x = torch.stack([torch.from_numpy(cv2.resize(load_image(p), (size, size))) for p in images[:8]])
    x = x.permute(0, 3, 1, 2).float() / 255
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration passes
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 4):
            model(x[i:i + 4])
    for m in norms:
        m.momentum = 0.03
    head = model.model[-1]
    for branch in (head.cv3, getattr(head, "one2one_cv3", None)):
        for seq in branch or ():
            seq[-1].bias.data.fill_(class_bias)
    model.eval()
    model.names = {0: "animal", 1: "person", 2: "vehicle"}
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper.save(str(path))
    return path


class Measured:
    """One whole-process run: wall seconds, CPU seconds (user + system, the child and the
    children it waited for), peak RSS in MiB, and the 1-minute load average at its start
    and end; ``stderr`` is the text it wrote there."""

    def __init__(self, wall: float, cpu: float, rss_mib: float, load: tuple[float, float], stderr: str):
        self.wall, self.cpu, self.rss_mib, self.load, self.stderr = wall, cpu, rss_mib, load, stderr


def _load1() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def measured_run(cmd: list[str], env: dict | None = None) -> Measured:
    """Run ``cmd`` from the repository root and measure it from the kernel's accounting
    (``wait4``: the command's own rusage, so concurrent jobs do not count), through a small
    launcher process (see ``_LAUNCHER``).

    Raises:
        SystemExit: the command failed (its stderr tail is in the message).
    """
    import tempfile

    with tempfile.TemporaryFile() as err:
        load0 = _load1()
        launcher = subprocess.run([sys.executable, "-c", _LAUNCHER, json.dumps(cmd)], cwd=ROOT, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, check=False)
        err.seek(0)
        text = err.read().decode(errors="replace")
    try:
        m = json.loads(launcher.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"launcher failed ({launcher.returncode}): {' '.join(cmd)}\n{text[-2000:]}") from None
    if m["returncode"]:
        raise SystemExit(f"command failed ({m['returncode']}): {' '.join(cmd)}\n{text[-2000:]}")
    return Measured(m["wall"], m["cpu"], m["maxrss_kib"] / 1024, (load0, _load1()), text)


# Started fresh for each measured command, it starts the command itself and reports its
# rusage. Linux records a process's peak RSS from the memory it had before exec too, and a
# child forked (or vforked) straight from this benchmark starts out with the benchmark's
# memory (torch and a model, ~1 GB once bench_cli has built its calibrated checkpoint): peak
# RSS figures were the benchmark's, not the command's. This launcher is a small process.
_LAUNCHER = """
import json, os, subprocess, sys, time
cmd = json.loads(sys.argv[1])
t0 = time.perf_counter()
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
                  "returncode": os.waitstatus_to_exitcode(status)}))
"""
