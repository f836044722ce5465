"""A running app with the real YOLOv5n checkpoint imported as a model, shared by the API and
browser tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from wildspace.settings import BUILTIN_SPECS_DIR, Settings

MODEL = "coco-yolov5n"


@pytest.fixture(scope="module")
def app_service(tmp_path_factory, shared_data):
    from wildspace.services.detectors import DetectorService

    home = tmp_path_factory.mktemp("app-home")
    settings = Settings(home=home, spec_dirs=(BUILTIN_SPECS_DIR, home / "specs"), offline=True,
                        hf_cache=home / "hf")
    service = DetectorService(settings)
    service.import_model(shared_data / "weights" / "yolov5n.pt", MODEL)
    return service


@pytest.fixture(scope="module")
def running_app(app_service, tmp_path_factory):
    from wildspace.ui.app import build_app

    demo = build_app(app_service, tmp_path_factory.mktemp("app-out"))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


@pytest.fixture
def upload_zip(tmp_path, shared_data) -> Path:
    import zipfile

    z = tmp_path / "card.zip"
    src = shared_data / "camera-trap"
    with zipfile.ZipFile(z, "w") as f:
        for name in ("ena24-small/2480.jpg", "ena24-small/352.jpg",
                     "megadetector-test/snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"):
            f.write(src / name, name)
        f.writestr("broken/truncated.jpg", (src / "ena24-small/49.jpg").read_bytes()[:4000])
    return z
