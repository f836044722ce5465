"""The app started as a public Hugging Face Space, probed as an anonymous visitor would:
a flood of queue joins, a disk-filling zip, expiry, anonymous training and imports over the
API and MCP, MCP identities, and the browser owner token."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
import zipfile
from pathlib import Path

import gradio as gr
import httpx
import pytest

from tests.ui.conftest import MODEL

pytestmark = pytest.mark.slow

FLOODER = {"X-Forwarded-For": "10.0.0.1"}
VISITOR = {"X-Forwarded-For": "10.0.0.2"}
SPACE_ENV = {"SYSTEM": "spaces", "SPACE_ID": "org/wildspace", "OAUTH_CLIENT_ID": "id",
             "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": "https://huggingface.co"}


def _space_settings(base, work: Path, **changes):
    from wildspace.settings.guards import Guards

    guards = dataclasses.replace(Guards.from_env({}, public=True), **changes)
    return dataclasses.replace(base, public_space=True, allow_training=True, allow_custom_weights=True,
                               guards=guards, work_dir=work)


@pytest.fixture
def space(app_service, tmp_path, monkeypatch):
    """A public Space (what hf_oauth provides, offline), embedded queue, MCP on."""
    import gradio.http_server

    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app

    for key, value in SPACE_ENV.items():
        monkeypatch.setenv(key, value)
        monkeypatch.setattr(gr.oauth, key, value, raising=False)  # read at gradio's import
    # the real OAuth routes (no hf.co call until someone logs in), without the Spaces hot-reload
    # watcher Gradio starts on a Space (it needs the `spaces` package)
    monkeypatch.setattr(gradio.http_server, "get_space", lambda: None)
    work = tmp_path / "work"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(work / "gradio"))  # this app's own upload cache
    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    service = DetectorService(_space_settings(app_service.settings, work))
    queue = JobQueue(dataclasses.replace(service.settings, storage=tmp_path / "storage"),
                     url=f"sqlite:///{tmp_path / 'q.db'}")
    ctx = start_local_worker(queue, service)
    demo = build_app(service, work, queue=queue, queue_above=3)
    demo.queue(default_concurrency_limit=2, max_size=20).launch(
        server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, mcp_server=True)
    yield demo, queue
    demo.close()
    ctx.shutdown()


def _fn_index(demo, api_name: str) -> int:
    return next(i for i, fn in demo.fns.items() if fn.api_name == api_name)


def _upload(demo, path: Path, headers: dict) -> str:
    with path.open("rb") as f:
        r = httpx.post(demo.local_url + "gradio_api/upload", files={"files": (path.name, f)},
                       headers=headers, timeout=60)
    r.raise_for_status()
    return r.json()[0]


def _file(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def test_a_flood_of_joins_from_one_visitor_leaves_others_answered(space, shared_data):
    from gradio_client import Client, handle_file

    demo, _ = space
    image = shared_data / "camera-trap" / "ena24-small" / "2480.jpg"
    visitor = Client(demo.local_url, verbose=False, headers=VISITOR)
    start = time.monotonic()
    visitor.predict(handle_file(str(image)), MODEL, 0.25, api_name="/detect_image")
    alone = time.monotonic() - start

    uploaded = _upload(demo, image, FLOODER)
    fn = _fn_index(demo, "detect_image")
    codes, refusals = [], []
    with httpx.Client(timeout=30) as http:
        for _ in range(60):  # joins that never listen for their answers
            body = {"data": [_file(uploaded), MODEL, 0.25, "none", 0.5], "fn_index": fn,
                    "session_hash": secrets.token_hex(8), "event_data": None, "trigger_id": None}
            r = http.post(demo.local_url + "gradio_api/queue/join", json=body, headers=FLOODER)
            codes.append(r.status_code)
            if r.status_code != 200:
                refusals.append(r.json().get("detail", ""))
    cap = demo.wildspace_guard.fair.guards.waiting_per_visitor
    assert codes.count(200) >= cap and refusals, codes
    assert all("per visitor" in m for m in refusals), refusals[:3]
    assert not any("Queue is full" in m for m in refusals)

    start = time.monotonic()
    visitor.predict(handle_file(str(image)), MODEL, 0.25, api_name="/detect_image")
    during = time.monotonic() - start
    # behind at most `cap` flood requests, never behind the whole flood (or refused: max_size 20)
    assert during < 3 * alone + (cap + 1) * max(alone, 1.0), (alone, during)


def _compressible_zip(path: Path, members: int = 8, mb: int = 100) -> Path:
    block = bytes(2**20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for i in range(members):
            with z.open(f"card/IMG_{i:04d}.JPG", "w") as f:
                for _ in range(mb):
                    f.write(block)
    return path


def test_a_disk_filling_zip_is_refused_and_nothing_is_kept(space, tmp_path):
    from gradio_client import Client, handle_file

    from wildspace.runs.disk import tree_size

    demo, _ = space
    bomb = _compressible_zip(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 20 * 2**20
    before = tree_size(tmp_path / "work")
    client = Client(demo.local_url, verbose=False, headers=VISITOR)
    with pytest.raises(Exception, match="WILDSPACE_REQUEST_DISK_MB"):
        client.predict([handle_file(str(bomb))], MODEL, 0.25, api_name="/detect_batch")
    work = tmp_path / "work"
    assert tree_size(work) - before < 5 * 2**20  # nothing unpacked, and the upload itself is gone
    assert not list(work.rglob("bomb.zip"))
    assert not list(work.glob("batch/run-*"))


def test_after_expiry_runs_jobs_and_gradios_cache_are_gone(space, shared_data, tmp_path):
    from gradio_client import Client, handle_file

    from tests.ui.test_jobs_tab import wait_done

    demo, queue = space
    src = shared_data / "camera-trap"
    small, big = tmp_path / "small.zip", tmp_path / "big.zip"
    names = ["ena24-small/2480.jpg", "ena24-small/352.jpg", "ena24-small/49.jpg",
             "megadetector-test/snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"]
    for z, members in ((small, names[:2]), (big, names)):
        with zipfile.ZipFile(z, "w") as f:
            for name in members:
                f.write(src / name, name)
    token = secrets.token_hex(16)
    client = Client(demo.local_url, verbose=False, headers={**VISITOR, "X-Wildspace-Token": token})
    summary, *_ = client.predict([handle_file(str(small))], MODEL, 0.25, api_name="/detect_batch")
    assert "**2 files**" in summary
    summary, *_ = client.predict([handle_file(str(big))], MODEL, 0.25, api_name="/detect_batch")
    assert "queued as job" in summary
    (job,) = wait_done(client)
    work = tmp_path / "work"
    assert list(work.glob("batch/run-*")) and any((work / "gradio").iterdir())
    assert Path(queue.store.files.path("jobs", job[0])).is_dir()

    guard = demo.wildspace_guard
    assert guard.disk.sweep() == 0 or list(work.glob("batch/run-*"))  # nothing fresh is deleted
    later = time.time() + guard.disk.guards.result_seconds + 60
    assert guard.disk.sweep(now=later) > 0
    assert not list(work.glob("batch/run-*"))
    assert not any((work / "gradio").iterdir())
    assert not Path(queue.store.files.path("jobs", job[0])).exists()


def test_anonymous_training_and_imports_are_refused_over_api_and_mcp(space, tmp_path, shared_data):
    from gradio_client import Client, handle_file

    demo, queue = space
    data = tmp_path / "classes.zip"
    with zipfile.ZipFile(data, "w") as z:
        for label in ("a", "b"):
            z.write(shared_data / "camera-trap" / "ena24-small" / "2480.jpg", f"{label}/x.jpg")
    client = Client(demo.local_url, verbose=False, headers=VISITOR)
    with pytest.raises(Exception, match="Log in with Hugging Face"):
        client.predict(handle_file(str(data)), "", "mine", "resnet18", 1, "ce", 64, "species", "",
                       api_name="/train_classifier")
    with pytest.raises(Exception, match="Log in with Hugging Face"):
        client.predict(handle_file(str(shared_data / "weights" / "yolov5n.pt")), "mine",
                       api_name="/import_detector")
    for token in (None, secrets.token_hex(16)):
        text = _call(demo, "train_classifier", {
            "up": _data_uri(data, "application/zip"), "fo": "", "nm": "mine", "ar": "resnet18", "ep": 1,
            "lo": "ce", "sz": 64, "ki": "species", "lm": ""}, token)
        assert '"isError":true' in text.replace(" ", "")
        assert ("x-wildspace-token" if token is None else "Log in with Hugging Face") in text
    assert queue.store.list("session:x") == [] and not list(Path(queue.store.files.path("jobs")).iterdir())


def test_without_the_owners_opt_in_there_is_no_training_or_upload_endpoint(app_service, tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app

    for key, value in SPACE_ENV.items():
        monkeypatch.setenv(key, value)
        monkeypatch.setattr(gr.oauth, key, value, raising=False)

    settings = dataclasses.replace(_space_settings(app_service.settings, tmp_path / "w"),
                                   allow_training=False, allow_custom_weights=False)
    queue = JobQueue(settings, url=f"sqlite:///{tmp_path / 'q.db'}")
    demo = build_app(DetectorService(settings), tmp_path / "w", queue=queue, queue_above=3)
    names = {fn.api_name for fn in demo.fns.values()}
    assert "detect_batch" in names and not names & {"train_classifier", "train_reid", "import_detector"}


def test_two_mcp_callers_do_not_see_each_others_jobs_and_detect_batch_works(space, shared_data):
    demo, _ = space
    image = _data_uri(shared_data / "camera-trap" / "ena24-small" / "2480.jpg", "image/jpeg")
    alice, bob = secrets.token_hex(16), secrets.token_hex(16)
    text = _call(demo, "detect_batch", {
        "file_list": [image, image], "model_name": MODEL, "conf": 0.25}, alice)
    assert "**2 files**" in text and '"isError":false' in text.replace(" ", "")
    text = _call(demo, "detect_batch", {
        "file_list": [image] * 4, "model_name": MODEL, "conf": 0.25}, alice)
    job_id = text.split("queued as job `")[1].split("`")[0]
    deadline = time.monotonic() + 120
    while "'done'" not in (listing := _call(demo, "jobs_list", {}, alice)):
        assert time.monotonic() < deadline, listing
        time.sleep(0.5)
    assert job_id in listing
    assert job_id not in _call(demo, "jobs_list", {}, bob)
    results = _call(demo, "jobs_results", {"job_id": job_id, "conf": 0.25}, alice)
    assert "_megadetector.json" in results and '"isError":false' in results.replace(" ", "")
    for name, args in (("jobs_results", {"job_id": job_id, "conf": 0.25}), ("jobs_cancel", {"job_id": job_id})):
        assert "No such job" in _call(demo, name, args, bob)
    assert "x-wildspace-token" in _call(demo, "jobs_list", {}, None)


def test_browser_tokens_are_signed_by_the_server_and_its_key_is_not_in_the_config(space):
    from wildspace.ui.identity import new_token, server_secret, verified

    demo, queue = space
    secret = server_secret(queue.settings.home)
    good = new_token(secret)
    assert verified(secret, good) == good.split(".")[0]
    raw = good.split(".")[0]
    for forged in (raw, f"{raw}.{'0' * 32}", "x" * 65, None, f"{secrets.token_hex(16)}.{good.split('.')[1]}"):
        assert verified(secret, forged) is None
    load = next(fn for fn in demo.fns.values() if fn.fn is not None and fn.fn.__name__ == "on_load")
    chosen = "a" * 32 + "." + "b" * 32  # a token the client made up is replaced
    token, owner = load.fn(chosen)
    assert token != chosen and owner == token.split(".")[0] and verified(secret, token) == owner
    assert load.fn(token) == (token, owner)
    config = httpx.get(demo.local_url + "config", timeout=30).text
    assert secret.decode() not in config


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def _call(demo, tool: str, arguments: dict, token: str | None) -> str:
    """Call an MCP tool by its function name (on a Space Gradio prefixes tool names)."""
    listing = json.loads(_mcp(demo, "tools/list", {}, token))
    (name,) = [t["name"] for t in listing["result"]["tools"] if t["name"].endswith(tool)]
    return _mcp(demo, "tools/call", {"name": name, "arguments": arguments}, token)


def _mcp(demo, method: str, params: dict, token: str | None) -> str:
    headers = {"Accept": "application/json, text/event-stream", **VISITOR}
    if token:
        headers["X-Wildspace-Token"] = token
    r = httpx.post(demo.local_url + "gradio_api/mcp/", headers=headers, timeout=300,
                   json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert r.status_code == 200, r.text
    text = r.text.split("data: ", 1)[1] if "data: " in r.text else r.text
    return json.dumps(json.loads(text))
