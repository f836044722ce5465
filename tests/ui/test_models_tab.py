"""The Models tab: list models; add a detector by upload (checked like `models import`);
no upload form or endpoint on a public Space unless the owner allows it."""

from __future__ import annotations

import dataclasses

import pytest

from tests.ui.conftest import MODEL

pytestmark = pytest.mark.slow


def _launch(service, out):
    from wildspace.ui.app import build_app

    demo = build_app(service, out)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return demo


def test_upload_a_detector_then_use_it(tmp_path, model_files, shared_data):
    from gradio_client import Client, handle_file

    from tests.factories import make_malicious_checkpoint
    from wildspace.services.detectors import DetectorService
    from wildspace.settings import BUILTIN_SPECS_DIR, Settings

    home = tmp_path / "home"
    service = DetectorService(Settings(home=home, spec_dirs=(BUILTIN_SPECS_DIR, home / "specs"), offline=True,
                                       hf_cache=home / "hf"))
    demo = _launch(service, tmp_path / "out")
    try:
        client = Client(demo.local_url, verbose=False)
        assert "/import_detector" in str(client.view_api(return_format="dict"))
        before = set(service.detector_names())
        evil = make_malicious_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned")
        with pytest.raises(Exception, match="refused"):
            client.predict(handle_file(str(evil)), "evil", api_name="/import_detector")
        assert not (tmp_path / "pwned").exists() and set(service.detector_names()) == before
        with pytest.raises(Exception, match="Invalid file type|not a PyTorch checkpoint"):
            client.predict(handle_file(str(shared_data / "camera-trap" / "ena24-small" / "49.jpg")), "x",
                           api_name="/import_detector")
        message, table, *pickers = client.predict(handle_file(str(shared_data / "weights" / "yolov5n.pt")),
                                                  "My YOLOv5n", api_name="/import_detector")
        assert "Added **my-yolov5n**" in message and "zebra" in message
        assert ["my-yolov5n", "detect", "yolov5-legacy", "yes"] in [row[:4] for row in table["data"]]
        assert len(pickers) >= 3  # single image, batch, video detector lists refreshed
        assert (home / "specs" / "my-yolov5n.yaml").is_file()
        zebra = shared_data / "camera-trap" / "megadetector-test" / "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"
        _, rows, _ = client.predict(handle_file(str(zebra)), "my-yolov5n", 0.3, api_name="/detect_image")
        assert [r[0] for r in rows["data"]] == ["zebra"] * 3
        with pytest.raises(Exception, match="hash|sha256|does not match"):  # a name taken by other weights
            client.predict(handle_file(str(model_files["mdv5_p6"])), "my-yolov5n", api_name="/import_detector")
    finally:
        demo.close()


def test_no_upload_on_a_public_space_unless_allowed(app_service, tmp_path, monkeypatch):
    from gradio_client import Client

    from wildspace.services.detectors import DetectorService
    from wildspace.ui.models_tab import UPLOAD_OFF, import_detector_file

    # what load_settings gives on a Space (SPACE_ID set) without WILDSPACE_ALLOW_CUSTOM_WEIGHTS;
    # public_space itself stays off here (its login button needs a real Space's OAuth setup)
    public = DetectorService(dataclasses.replace(app_service.settings, allow_custom_weights=False))
    demo = _launch(public, tmp_path / "out")
    try:
        api = str(Client(demo.local_url, verbose=False).view_api(return_format="dict"))
        assert "/import_detector" not in api and "/detect_image" in api
        config = demo.get_config_file()
        assert any(c.get("props", {}).get("elem_id") == "models-upload-off" for c in config["components"])
        assert not any(c.get("props", {}).get("elem_id") == "models-upload" for c in config["components"])
    finally:
        demo.close()
    import gradio as gr

    with pytest.raises(gr.Error) as err:  # the handler itself refuses too
        import_detector_file(public, str(tmp_path / "x.pt"), "x")
    assert UPLOAD_OFF in str(err.value.message) and MODEL in public.detector_names()
    from wildspace.settings import load_settings

    monkeypatch.setenv("SPACE_ID", "someone/wildspace")
    monkeypatch.delenv("WILDSPACE_ALLOW_CUSTOM_WEIGHTS", raising=False)
    assert not load_settings().allow_custom_weights
    monkeypatch.setenv("WILDSPACE_ALLOW_CUSTOM_WEIGHTS", "1")
    assert load_settings().allow_custom_weights
