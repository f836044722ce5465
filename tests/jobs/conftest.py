"""Queue test fixtures: a real redis-server on loopback, worker subprocesses, job inputs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    if REDIS is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    port = _free_port()
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request, tmp_path, monkeypatch):
    """Both backends: the embedded SQLite queue and a real Redis server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'queue' / 'huey.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    monkeypatch.setenv("WILDSPACE_QUEUE", url)
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("WILDSPACE_LEASE_TTL", "2")
    return url


class Workers:
    """Start and kill `python -m wildspace worker` processes."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "wildspace", "worker", "--batch-size", "1", *extra],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=30)

    def print_logs(self) -> None:
        """The workers' own output; pytest shows it only when the test failed."""
        for k in range(len(self.procs)):
            text = (self.tmp_path / f"worker-{k}.log").read_text(errors="replace")
            print(f"----- worker {k} (exit {self.procs[k].returncode}) -----\n{text[-6000:]}")


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.stop_all()
    w.print_logs()


@pytest.fixture
def image_list(shared_data, tmp_path) -> Path:
    """48 inputs: the 16 MegaDetector test images and 8 ENA24 ones, each listed twice."""
    imgs = sorted((shared_data / "camera-trap" / "megadetector-test").glob("*.[jJ][pP][gG]"))
    imgs += sorted((shared_data / "camera-trap" / "ena24-small").glob("*.jpg"))[:8]
    lst = tmp_path / "inputs.txt"
    lst.write_text("\n".join(str(p) for p in imgs * 2) + "\n")
    return lst
