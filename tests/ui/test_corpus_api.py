"""The bad-input corpus through the app's API (``gradio_client`` against the running app).

Batches: every bad case is a row with its failure reason, the good rows equal a clean run,
nothing is written outside the app's output folder. Single-file endpoints (``detect_image``,
``lookup_individual``) answer a bad file with a clear error naming the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.corpus import build_corpus, check_results, of_kind, uploads
from tests.ui.conftest import MODEL
from wildspace.formats.megadetector import read_results

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app.local_url, verbose=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("corpus")
    cases = build_corpus(root / "in", shared_data / "camera-trap" / "ena24-small" / "49.jpg")
    clean = root / "clean"
    clean.mkdir()
    for c in of_kind(cases, "image").values():
        if c.ok:
            shutil.copy(c.path, clean / c.name)
    return root, cases


def _tree(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


def _batch(client, files: list[Path]) -> tuple[dict, dict]:
    from gradio_client import handle_file

    summary, _, table, downloads = client.predict([handle_file(str(f)) for f in files], MODEL, 0.05,
                                                  api_name="/detect_batch")
    md = next(p for p in downloads if p.endswith("_megadetector.json"))
    return {r[0]: r for r in table["data"]}, {im["file"]: im for im in read_results(md)["images"]}


def test_detect_batch_on_the_corpus(client, corpus, running_app, tmp_path):
    root, cases = corpus
    expected = {**of_kind(cases, "image"), **of_kind(cases, "zip")}
    before = _tree(root)
    rows, images = _batch(client, uploads(cases, "image", "zip"))
    good = check_results(images.values(), expected)
    for name, case in expected.items():
        assert (rows[name][1] == "failed") is (not case.ok), rows[name]
        if not case.ok:
            assert case.reason in rows[name][7].lower(), rows[name]
    _, clean = _batch(client, sorted((root / "clean").iterdir()))
    for name, im in good.items():
        assert im["detections"] == clean.get(name, clean["good.jpg"])["detections"], name
    assert _tree(root) == before
    assert not list(tmp_path.parent.parent.rglob("escape.jpg"))


def test_detect_image_names_the_reason_for_each_bad_file(client, corpus):
    from gradio_client import handle_file

    _, cases = corpus
    for case in of_kind(cases, "image").values():
        if case.ok:
            _, table, json_file = client.predict(handle_file(str(case.path)), MODEL, 0.05,
                                                 api_name="/detect_image")
            assert Path(read_results(json_file)["images"][0]["file"]).stem == Path(case.name).stem
            continue
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(case.path)), MODEL, 0.05, api_name="/detect_image")
        assert case.reason in str(err.value).lower(), (case.name, str(err.value))


def test_detect_video_on_the_corpus(client, corpus):
    from gradio_client import handle_file

    _, cases = corpus
    videos = of_kind(cases, "video")
    _, all_videos, table, md_json = client.predict(
        [handle_file(str(c.path)) for c in videos.values()], MODEL, 0.05, "every N frames", 2,
        api_name="/detect_video")
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == set(videos)
    for name, case in videos.items():
        assert bool(rows[name][7]) is (not case.ok), rows[name]
        assert case.reason in rows[name][7].lower(), rows[name]
        if case.ok:
            assert rows[name][2] == 5  # 10 frames, every 2nd
    assert len(all_videos) == 2
    check_results(read_results(md_json)["images"], videos)


def test_video_length_limit(client, corpus, app_service):
    from gradio_client import handle_file

    from wildspace.settings.limits import Limits

    _, cases = corpus
    good = of_kind(cases, "video")["good.mp4"]  # 2 s at 5 fps
    settings = app_service.settings
    old = settings.limits
    object.__setattr__(settings, "limits", Limits(max_video_seconds=1.0))  # as WILDSPACE_MAX_VIDEO_SECONDS=1
    try:
        _, _, table, _ = client.predict([handle_file(str(good.path))], MODEL, 0.05, "every N frames", 1,
                                        api_name="/detect_video")
    finally:
        object.__setattr__(settings, "limits", old)
    assert "video too long" in table["data"][0][7] and "WILDSPACE_MAX_VIDEO_SECONDS" in table["data"][0][7]


def test_lookup_names_the_reason_for_each_bad_file(client, corpus):
    from gradio_client import handle_file

    _, cases = corpus
    for case in of_kind(cases, "image").values():
        with pytest.raises(Exception) as err:
            client.predict("no-such-gallery", handle_file(str(case.path)), "unknown",
                           "none (the photo is already a crop)", "auto", api_name="/lookup_individual")
        msg = str(err.value).lower()
        assert (case.reason if not case.ok else "no-such-gallery") in msg, (case.name, msg)


def test_safe_image_is_an_ordinary_image_component_to_the_browser():
    import gradio as gr

    from wildspace.ui.safe_image import SafeImage

    with gr.Blocks() as demo:
        SafeImage(type="filepath", label="photo", sources=["upload"])
        gr.Image(type="filepath", label="photo", sources=["upload"])
    safe, plain = demo.get_config_file()["components"][:2]
    assert safe["type"] == plain["type"] == "image"
    assert safe["props"].keys() == plain["props"].keys()
    assert SafeImage(type="filepath").preprocess(None) is None
