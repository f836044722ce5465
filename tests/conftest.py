"""Test setup: no network, everything written under tmp, shared data located once.

Tests build tiny random models of the real architectures, seed a local Hugging Face cache
and run the production loading code against it. Sockets are blocked except loopback.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Read at import time by huggingface_hub / ultralytics / gradio: set before any of them loads.
_SESSION_TMP = Path(os.environ.setdefault("WILDSPACE_TEST_TMP", __import__("tempfile").mkdtemp(prefix="wildspace-tests-")))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_CONFIG_DIR"] = str(_SESSION_TMP / "ultralytics")
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf")
os.environ["GRADIO_TEMP_DIR"] = str(_SESSION_TMP / "gradio")  # one for the session: apps outlive tests

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NO_SHARED = "../shared/data is absent (CI always has it); this test needs its real files"

_real_connect = socket.socket.connect
_real_create_connection = socket.create_connection


def _is_loopback(address) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.")
    return isinstance(address, (str, bytes))  # unix sockets


def _guarded_connect(self, address):
    if not _is_loopback(address):
        raise RuntimeError(f"network access blocked in tests: {address!r}")
    return _real_connect(self, address)


def _guarded_create_connection(address, *args, **kwargs):
    if not _is_loopback(address):
        raise RuntimeError(f"network access blocked in tests: {address!r}")
    return _real_create_connection(address, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.create_connection = _guarded_create_connection


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own data dir, Hub cache and ultralytics settings dir, offline."""
    monkeypatch.setenv("WILDSPACE_HOME", str(tmp_path / "wildspace-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    # tests run the reference arithmetic unless they test the default (auto) choice itself
    monkeypatch.setenv("WILDSPACE_BACKEND", "torch")
    monkeypatch.setenv("WILDSPACE_PRECISION", "fp32")
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(NO_SHARED)
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict:
    """Random-weight checkpoints of the real architectures, built once per session."""
    from tests import factories

    d = tmp_path_factory.mktemp("model-files")
    return {
        "mdv5_p6": factories.make_yolov5_checkpoint(d / "md_v5x6_random.pt", variant="n6"),
        "yolov9": factories.make_ultralytics_checkpoint(d / "MDV6-yolov9-random.pt", "yolov9t.yaml"),
        "yolov10": factories.make_ultralytics_checkpoint(d / "MDV6-yolov10-random.pt", "yolov10n.yaml"),
    }


@pytest.fixture(scope="session")
def rtdetr_file(tmp_path_factory) -> Path:
    from tests import factories

    d = tmp_path_factory.mktemp("rtdetr")
    return factories.make_ultralytics_checkpoint(d / "MDV6-rtdetr-random.pt", "rtdetr-l.yaml")


@pytest.fixture
def specs_dir(tmp_path, monkeypatch) -> Path:
    """A folder of test specs the production registry reads (WILDSPACE_MODELS)."""
    d = tmp_path / "specs"
    d.mkdir()
    monkeypatch.setenv("WILDSPACE_MODELS", str(d))
    return d


@pytest.fixture
def hub_cache(tmp_path) -> Path:
    return tmp_path / "hf" / "hub"
