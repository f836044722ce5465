"""The app: the single-image handler on real files, and the running app through gradio_client."""

from __future__ import annotations

import pytest

from wildspace.formats.megadetector import read_results
from wildspace.services.detectors import DetectorService

ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"


@pytest.fixture
def service_with_yolov5n(shared_data):
    service = DetectorService()
    service.import_model(shared_data / "weights" / "yolov5n.pt", "coco-yolov5n")
    return service


def test_single_image_handler(service_with_yolov5n, shared_data, tmp_path):
    from wildspace.ui.single_image import detect_single

    img = shared_data / "camera-trap" / "megadetector-test" / ZEBRA
    annotated, rows, json_path = detect_single(service_with_yolov5n, str(img), "coco-yolov5n", 0.3, tmp_path)
    from PIL import Image

    with Image.open(annotated) as im:  # a file: Gradio copies files into its cache atomically
        assert im.size == (2048, 1536)
    assert [r[0] for r in rows] == ["zebra", "zebra", "zebra"]
    doc = read_results(json_path)
    assert doc["images"][0]["file"] == ZEBRA and len(doc["images"][0]["detections"]) == 3


def test_single_image_handler_errors_are_messages(service_with_yolov5n, tmp_path):
    import gradio as gr

    from wildspace.ui.single_image import detect_single

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(gr.Error, match="cannot be read"):
        detect_single(service_with_yolov5n, str(bad), "coco-yolov5n", 0.3, tmp_path)
    good = tmp_path / "good.png"
    from PIL import Image
    Image.new("RGB", (64, 48)).save(good)
    with pytest.raises(gr.Error, match="models import FILE --as megadetector-v5a"):
        detect_single(service_with_yolov5n, str(good), "megadetector-v5a", 0.3, tmp_path)


@pytest.mark.slow
def test_running_app_through_gradio_client(service_with_yolov5n, shared_data, tmp_path):
    from gradio_client import Client, handle_file

    from wildspace.ui.app import build_app

    demo = build_app(service_with_yolov5n, tmp_path / "out")
    demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True,
                        quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        img = shared_data / "camera-trap" / "megadetector-test" / ZEBRA
        annotated, table, json_file = client.predict(handle_file(str(img)), "coco-yolov5n", 0.3,
                                                     api_name="/detect_image")
        labels = [row[0] for row in table["data"]]
        assert labels == ["zebra", "zebra", "zebra"]
        assert read_results(json_file)["images"][0]["file"] == ZEBRA
    finally:
        demo.close()
