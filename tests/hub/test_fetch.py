"""Verified fetching: seeded Hub cache, hash checks, offline errors, URL download, import."""

from __future__ import annotations

import http.server
import threading
from functools import partial

import pytest

from tests.factories import seed_hub_cache, sha256, write_spec
from wildspace.hub.fetch import HashMismatch, ModelStore, ModelUnavailable
from wildspace.hub.specs import SpecRegistry
from wildspace.settings import load_settings


def _registry():
    return SpecRegistry(load_settings().spec_dirs)


@pytest.fixture
def weight_file(tmp_path):
    p = tmp_path / "w.pt"
    p.write_bytes(b"pretend weights " * 100)
    return p


def test_fetch_from_seeded_hub_cache(specs_dir, hub_cache, weight_file):
    rev = seed_hub_cache(hub_cache, "org/md", "sub/w.pt", weight_file)
    write_spec(specs_dir, "t-model", "yolov5-legacy", "w.pt", sha256(weight_file),
               hub={"repo_id": "org/md", "revision": rev, "path_in_repo": "sub/w.pt"})
    store = ModelStore(load_settings())
    path = store.fetch(_registry().get("t-model"))
    assert path.read_bytes() == weight_file.read_bytes()
    assert store.cached_path(_registry().get("t-model")) is not None


def test_space_repos_are_found_too(specs_dir, hub_cache, weight_file):
    rev = seed_hub_cache(hub_cache, "org/space", "w.pt", weight_file, repo_type="space")
    write_spec(specs_dir, "t-space", "yolov5-legacy", "w.pt", sha256(weight_file),
               hub={"repo_id": "org/space", "revision": rev, "path_in_repo": "w.pt", "repo_type": "space"})
    assert ModelStore(load_settings()).fetch(_registry().get("t-space")).is_file()


def test_tampered_cache_file_is_refused(specs_dir, hub_cache, weight_file, tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(b"something else")
    rev = seed_hub_cache(hub_cache, "org/md", "w.pt", other)
    write_spec(specs_dir, "t-model", "yolov5-legacy", "w.pt", sha256(weight_file),
               hub={"repo_id": "org/md", "revision": rev, "path_in_repo": "w.pt"})
    with pytest.raises(HashMismatch, match="refusing"):
        ModelStore(load_settings()).fetch(_registry().get("t-model"))


def test_md5_is_checked_when_published(specs_dir, weight_file):
    write_spec(specs_dir, "t-md5", "yolov5-legacy", "w.pt", None,
               url="https://example.org/w.pt")
    import yaml
    p = specs_dir / "t-md5.yaml"
    data = yaml.safe_load(p.read_text())
    data["weights"]["md5"] = "0" * 32
    p.write_text(yaml.safe_dump(data))
    store = ModelStore(load_settings())
    with pytest.raises(HashMismatch, match="md5"):
        store.import_file(_registry().get("t-md5"), weight_file)


def test_missing_model_offline_names_the_import_command(specs_dir, weight_file):
    write_spec(specs_dir, "t-missing", "yolov5-legacy", "w.pt", sha256(weight_file),
               hub={"repo_id": "org/none", "revision": "a" * 40, "path_in_repo": "w.pt"})
    with pytest.raises(ModelUnavailable) as err:
        ModelStore(load_settings()).fetch(_registry().get("t-missing"))
    msg = str(err.value)
    assert "\n" not in msg
    assert "python -m wildspace models import FILE --as t-missing" in msg


def test_import_verifies_then_fetch_uses_the_import(specs_dir, weight_file, tmp_path):
    write_spec(specs_dir, "t-air", "yolov5-legacy", "w.pt", sha256(weight_file),
               url="https://example.org/w.pt")
    store = ModelStore(load_settings())
    spec = _registry().get("t-air")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not it")
    with pytest.raises(HashMismatch):
        store.import_file(spec, bad)
    store.import_file(spec, weight_file)
    assert store.fetch(spec).read_bytes() == weight_file.read_bytes()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_download_records_hash_and_refuses_a_changed_file(specs_dir, http_server, monkeypatch):
    root, base = http_server
    (root / "w.pt").write_bytes(b"first version")
    write_spec(specs_dir, "t-url", "ultralytics", "w.pt", None, url="https://example.org/w.pt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    store = ModelStore(load_settings())
    spec = _registry().get("t-url")
    # the spec demands https; point this one download at the loopback server
    object.__setattr__(spec.weights, "url", f"{base}/w.pt")
    path = store.fetch(spec)
    assert path.read_bytes() == b"first version"
    assert store._recorded()["t-url"] == sha256(path)
    path.unlink()
    (root / "w.pt").write_bytes(b"swapped upstream")
    with pytest.raises(HashMismatch):
        store.fetch(spec)
    assert not store.imported_path(spec).exists()
