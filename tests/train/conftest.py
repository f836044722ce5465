"""Tiny synthetic training sets: classes told apart by colour, small images, fast models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_ARCH = "test_resnet"  # timm's tiny test architecture
SIZE = 32


def make_image_folder(root: Path, classes=("red", "blue"), per_class: int = 10, seed: int = 0) -> Path:
    """``root/<class>/<n>.png``: noisy images whose dominant colour is the class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = {"red": (200, 40, 40), "blue": (40, 40, 200), "green": (40, 200, 40)}
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.array(colours.get(c, (128, 128, 128)), float)
            img = np.clip(base + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / c / f"{c}_{i:02d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data")


def tiny_config(data: Path, out: Path, **kw):
    from wildspace.train.classifier import TrainConfig

    base = dict(data=str(data), out_dir=str(out), name="tiny-colours", arch=TINY_ARCH, family="timm",
                epochs=3, batch_size=4, input_size=SIZE, lr=3e-3, patience=10)
    base.update(kw)
    return TrainConfig(**base)


def wait_for_epochs(queue, job: str, seen: list[int], until, timeout: float = 300, poll: float = 0.05):
    """Poll a training job's status until ``until(status)``; every new epoch count is
    appended to ``seen`` (to check progress never goes backwards)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        s = queue.store.status(job, "alice")
        if not seen or s.done != seen[-1]:
            seen.append(s.done)
        if until(s):
            return s
        time.sleep(poll)
    raise AssertionError(f"timed out; epochs seen {seen}")


def kill_and_resume(queue, job: str, tmp_path: Path, epochs: int, poll: float = 0.05):
    """Start a worker, SIGKILL it once 2 epochs are done, start another, wait for the end.

    Returns ``(final status, epoch counts seen, epochs done when killed)``; the workers'
    logs are printed when something fails."""
    import signal

    from tests.jobs.conftest import Workers

    workers = Workers(tmp_path)
    seen: list[int] = []
    try:
        w = workers.start()
        wait_for_epochs(queue, job, seen, lambda s: s.done >= 2, poll=poll)
        w.send_signal(signal.SIGKILL)  # mid-training, no warning
        w.wait()
        killed_at = queue.store.status(job, "alice").done
        workers.start()
        s = wait_for_epochs(queue, job, seen, lambda s: s.state in ("done", "failed"), poll=poll)
    except BaseException:
        workers.print_logs()
        raise
    finally:
        workers.stop_all()
    assert killed_at < epochs
    return s, seen, killed_at
