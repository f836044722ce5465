"""Every tab's function through gradio_client against the running app (real images, real model)."""

from __future__ import annotations

import json

import pytest

from tests.ui.conftest import MODEL
from wildspace.formats.megadetector import read_results

ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app.local_url, verbose=False)


def test_detect_image(client, shared_data):
    from gradio_client import handle_file

    img = shared_data / "camera-trap" / "megadetector-test" / ZEBRA
    _, table, json_file = client.predict(handle_file(str(img)), MODEL, 0.3, api_name="/detect_image")
    assert [row[0] for row in table["data"]] == ["zebra", "zebra", "zebra"]
    assert read_results(json_file)["images"][0]["file"] == ZEBRA


def test_detect_batch(client, upload_zip, shared_data):
    from gradio_client import handle_file

    loose = shared_data / "camera-trap" / "ena24-small" / "49.jpg"
    summary, gallery, table, downloads = client.predict(
        [handle_file(str(upload_zip)), handle_file(str(loose))], MODEL, 0.25, api_name="/detect_batch")
    assert "5 files" in summary and "1 failed" in summary
    rows = {r[0]: r for r in table["data"]}
    assert rows["broken/truncated.jpg"][1] == "failed"
    assert rows[f"megadetector-test/{ZEBRA}"][6] == "zebra"
    assert len(gallery) == 4
    names = sorted(p.rsplit("/", 1)[-1] for p in downloads)
    assert any(n.endswith("_megadetector.json") for n in names)
    assert any(n.endswith("_camtrap_dp.zip") for n in names)
    md = next(p for p in downloads if p.endswith("_megadetector.json"))
    assert len(read_results(md)["images"]) == 5


def test_detect_video(client, shared_data):
    from gradio_client import handle_file

    videos = [shared_data / "video" / n for n in ("chimp.mp4", "PICT0021.ASF", "EK000059.AVI")]
    video, all_videos, table, md_json = client.predict(
        [handle_file(str(v)) for v in videos], MODEL, 0.3, "every S seconds", 5, api_name="/detect_video")
    video_path = video["video"] if isinstance(video, dict) else video
    assert video_path.endswith(".mp4")
    assert len(all_videos) == 3
    rows = {r[0]: r for r in table["data"]}
    assert rows["chimp.mp4"][2] == 3  # 15 s at one frame every 5 s
    doc = read_results(md_json)
    chimp = next(im for im in doc["images"] if im["file"] == "chimp.mp4")
    assert chimp["frame_rate"] == 30.0 and chimp["frames_processed"] == [0, 150, 300]
    assert all(d["frame_number"] in (0, 150, 300) for d in chimp["detections"])


def test_api_names_are_stable(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert {"/detect_image", "/detect_batch", "/detect_video"} <= set(info["named_endpoints"])
    json.dumps(info)
