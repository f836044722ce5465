"""Galleries end to end on synthetic coat patterns: build, save, reopen, look up, enrol,
atomic writes, the Hub round trip through a local cache, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tests.factories import seed_hub_cache
from tests.reid.synthetic import coat, photo
from wildspace.reid import gallery as gallery_mod
from wildspace.reid.build import read_identity_table
from wildspace.reid.gallery import GalleryError, open_gallery, pull_gallery, push_gallery, version_dir
from wildspace.reid.matching import Matcher, MatchingError, flank_mask
from wildspace.services.galleries import GalleryService
from wildspace.settings import load_settings


@pytest.fixture
def built(synthetic_set, tmp_path):
    images, table = synthetic_set
    svc = GalleryService(load_settings())
    root, gallery, failures = svc.build("cats", images, table)
    return svc, root, gallery, failures


def test_build_save_reopen(built):
    svc, root, gallery, failures = built
    assert failures == []
    assert root == svc.root / "cats" and (root / "CURRENT").is_file()
    again = open_gallery(root)
    assert [r.identity for r in again.records] == [r.identity for r in gallery.records]
    assert len(again.features) == len(again) == 9
    assert again.images[0] == gallery.images[0]
    assert set(again.calibrations) == {"local"}
    assert svc.names() == ["cats"]
    # the data folder is a real datasets dataset
    from datasets import load_from_disk

    ds = load_from_disk(str(version_dir(root) / "data"))
    assert ds.num_rows == 9 and set(ds.column_names) >= {"identity", "viewpoint", "bbox", "image"}


def test_lookup_known_and_new(built):
    svc, root, gallery, _ = built
    # a new photo of 'bo' (unseen pose and background)
    ans = svc.lookup("cats", photo(coat(1001), seed=999))
    assert ans.result.verdict == "known" and ans.result.identity == "bo"
    assert ans.result.matches[0].probability > 0.5
    assert len(ans.result.matches) <= 5
    assert [m.identity for m in ans.result.matches][0] == "bo"
    # an animal the gallery has never seen
    ans = svc.lookup("cats", photo(coat(4242), seed=7))
    assert ans.result.verdict == "new" and ans.result.identity is None


def test_enrol_new_animal_persists(built):
    svc, root, gallery, _ = built
    newcomer = coat(4242)
    g = svc.enrol("cats", photo(newcomer, seed=1), "dax")
    assert len(g) == 10 and g.calibrations == gallery.calibrations  # kept until recalibrated
    svc.enrol("cats", photo(newcomer, seed=2), "dax")
    assert svc.wait_calibrated(timeout=120)
    fresh = GalleryService(load_settings())  # as after an app restart
    assert len(fresh.open("cats")) == 11
    # the background recalibration saved the calibration of the 11-photo gallery
    reference = dataclasses.replace(fresh.open("cats"), calibrations={})
    GalleryService.calibrate(reference)
    assert fresh.open("cats").calibrations == reference.calibrations != gallery.calibrations
    ans = fresh.lookup("cats", photo(newcomer, seed=3))
    assert ans.result.identity == "dax"
    with pytest.raises(GalleryError, match="name"):
        svc.enrol("cats", photo(newcomer, seed=4), "  ")


def test_crash_mid_write_keeps_the_previous_gallery(built, monkeypatch):
    svc, root, gallery, _ = built
    before = (root / "CURRENT").read_text()

    def explode(folder, g):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "half-written").write_text("x")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(gallery_mod, "write_version", explode)
    with pytest.raises(KeyboardInterrupt):
        svc.enrol("cats", photo(coat(5), seed=1), "eve")
    assert (root / "CURRENT").read_text() == before
    assert len(open_gallery(root)) == 9
    assert not [p for p in (root / "versions").iterdir() if p.name.startswith(".staging")]


def test_flank_awareness():
    m = flank_mask(["left", "", "right"], ["left", "right", ""])
    assert m.tolist() == [[False, True, False], [False, False, False], [True, False, False]]


def test_flank_filter_in_lookup(synthetic_set, tmp_path):
    images, table = synthetic_set
    text = table.read_text().splitlines()
    # mark all of bo's photos as right flank
    rows = [text[0]] + [line.replace(",,", ",right,") if line.startswith("bo_") else line
                        for line in text[1:]]
    t2 = tmp_path / "ids.csv"
    t2.write_text("\n".join(rows) + "\n")
    assert {r.viewpoint for r in read_identity_table(t2) if r.identity == "bo"} == {"right"}
    svc = GalleryService(load_settings())
    svc.build("flanks", images, t2)
    q = photo(coat(1001), seed=999)
    assert svc.lookup("flanks", q, viewpoint="right").result.identity == "bo"
    left = svc.lookup("flanks", q, viewpoint="left").result
    assert "bo" not in [m.identity for m in left.matches] and left.verdict == "new"


def test_bad_files_are_failures_not_crashes(synthetic_set, tmp_path):
    images, table = synthetic_set
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in images.glob("*.jpg"):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    t = tmp_path / "ids.csv"
    t.write_text(table.read_text() + "broken.jpg,ana,,S0,2024\n../escape.jpg,ana,,S0,2024\n")
    svc = GalleryService(load_settings())
    _, g, failures = svc.build("partial", folder, t)
    assert len(g) == 9
    assert {f for f, _ in failures} == {"broken.jpg", "../escape.jpg"}


def test_identity_table_errors(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("image,animal\na.jpg,x\n")
    with pytest.raises(GalleryError, match="identity"):
        read_identity_table(p)
    p.write_text("file,identity,bbox\na.jpg,x,0.1 0.2 2 0.3\n")
    with pytest.raises(GalleryError, match="line 2"):
        read_identity_table(p)
    p.write_text("file,identity,bbox,side\na.jpg,x,\"[0.1, 0.2, 0.5, 0.3]\",L\n")
    (row,) = read_identity_table(p)
    assert row.bbox == (0.1, 0.2, 0.5, 0.3) and row.viewpoint == "left"


def test_method_without_embeddings_is_a_clear_error(built):
    _, _, gallery, _ = built
    with pytest.raises(MatchingError, match="cannot use method 'embed'"):
        Matcher(gallery, "embed")


def test_pull_from_hub_cache_and_push_needs_token(built, tmp_path, monkeypatch):
    svc, root, gallery, _ = built
    live = version_dir(root)
    hub = Path(os.environ["HF_HOME"]) / "hub"
    revision = None
    for f in sorted(p for p in live.rglob("*") if p.is_file()):
        revision = seed_hub_cache(hub, "org/cats-gallery", str(f.relative_to(live)), f,
                                  repo_type="dataset", revision=revision or "a" * 40)
    path = pull_gallery("org/cats-gallery", "a" * 40, hub)
    pulled = open_gallery(path)
    assert [r.image_id for r in pulled.records] == [r.image_id for r in gallery.records]
    with pytest.raises(GalleryError, match="40-hex"):
        pull_gallery("org/cats-gallery", "main", hub)
    with pytest.raises(GalleryError, match="token"):
        push_gallery(root, "org/cats-gallery", None)

    calls = {}

    class FakeApi:
        def __init__(self, token):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["repo"] = (repo_id, kw["repo_type"])

        def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return type("Info", (), {"oid": "b" * 40})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert push_gallery(root, "org/cats-gallery", "hf_x") == "b" * 40
    assert calls["repo"] == ("org/cats-gallery", "dataset")
    assert "gallery.json" in calls["files"] and "data" in calls["files"]


def test_cli_evaluate_and_gallery_commands(synthetic_set, tmp_path, capsys):
    from wildspace.cli import main

    images, table = synthetic_set
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["top1"] == 1.0 and out["unknown_queries"] == 1 and out["baus"] == 1.0
    assert set(out["map_at_k"]) == {"1", "3", "5"} and out["threshold"] > 0
    # the table has station + date: each query leaves out its whole encounter, by default
    assert out["left_out"].startswith("left out: the query's whole encounter (same station and date")
    assert out["calibration_pairs"] == "cross-encounter" and out["encounters"] == 3
    assert 0.0 <= out["brier_top"] <= 1.0 and sum(c["count"] for c in out["reliability"]) == 9
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table),
                 "--group-by", "station", "--json"]) == 0
    grouped = json.loads(capsys.readouterr().out)
    assert grouped["left_out"] == "left out: the query and every image with its station"
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table),
                 "--leave-out", "image", "--pooling", "events", "--unknown", "bo",
                 "--report", str(tmp_path / "rep"), "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["left_out"].startswith("left out: the query image only")
    assert single["pooling"] == "events" and single["top1"] == 1.0
    assert single["open_set"]["new_rate"] == 1.0 and single["open_set"]["unknown_queries"] == 3
    assert single["open_set"]["known_found"] == 1.0
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 1000
    assert "Brier" in (tmp_path / "rep" / "report.md").read_text()
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table),
                 "--unknown", "nobody"]) == 1
    assert "not in the table" in capsys.readouterr().err
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table),
                 "--method", "embed"]) == 1
    assert "needs --model" in capsys.readouterr().err

    out_dir = tmp_path / "g"
    assert main(["gallery", "build", "--images", str(images), "--identities", str(table),
                 "--out", str(out_dir)]) == 0
    capsys.readouterr()
    q = tmp_path / "q.jpg"
    from PIL import Image

    Image.fromarray(photo(coat(1000), seed=555)).save(q)
    assert main(["gallery", "lookup", str(out_dir), str(q), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "known" and doc["identity"] == "ana"
    assert main(["gallery", "info", str(out_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 9
    assert main(["gallery", "enrol", str(out_dir), str(q), "--identity", "ana"]) == 0
    assert len(open_gallery(out_dir)) == 10


def test_pulled_gallery_pushes_enrolments_when_a_token_is_set(built, monkeypatch):
    svc, root, gallery, _ = built
    live = version_dir(root)
    hub = Path(os.environ["HF_HOME"]) / "hub"
    for f in sorted(p for p in live.rglob("*") if p.is_file()):
        seed_hub_cache(hub, "org/field-cats", str(f.relative_to(live)), f, repo_type="dataset",
                       revision="c" * 40)
    pulled = svc.pull("field", "org/field-cats", "c" * 40)
    assert pulled.meta["hub_repo"] == "org/field-cats" and len(pulled) == 9
    pushed = []
    monkeypatch.setattr("wildspace.reid.gallery.push_gallery",
                        lambda root, repo, token: pushed.append((repo, token)) or "d" * 40)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    svc.settings = dataclasses.replace(svc.settings, hf_token=None)  # HF_TOKEN, as the front end read it
    svc.enrol("field", photo(coat(31), 1), "newcat")
    assert svc.wait_calibrated(timeout=120)
    assert pushed == []  # no token: stays local
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    svc.settings = dataclasses.replace(svc.settings, hf_token="hf_test")
    svc.enrol("field", photo(coat(31), 2), "newcat")
    assert svc.wait_calibrated(timeout=120)
    assert pushed == [("org/field-cats", "hf_test")]  # once, after the recalibration
    assert open_gallery(svc.path("field")).meta["hub_repo"] == "org/field-cats"
    # the CLI (no background thread) pushes from the enrolment itself
    cli = GalleryService(load_settings(), background_calibration=False)
    cli.enrol("field", photo(coat(31), 3), "newcat")
    assert pushed == [("org/field-cats", "hf_test")] * 2


def test_whole_frames_are_cropped_to_the_best_animal_box(synthetic_set, tmp_path):
    """The detector's most confident *animal* box is the crop (people/vehicles ignored)."""
    from types import SimpleNamespace

    from wildspace.types import Detection

    boxes = (Detection(1, 0.95, (0.0, 0.0, 0.2, 0.2)),      # a person: never the crop
             Detection(0, 0.80, (0.25, 0.25, 0.5, 0.5)),    # the animal
             Detection(0, 0.30, (0.7, 0.7, 0.2, 0.2)))
    det = SimpleNamespace(info=SimpleNamespace(labels=("animal", "person", "vehicle")),
                          prepare=lambda rgb: rgb, run=lambda batch, conf: [boxes] * len(batch))
    detectors = SimpleNamespace(load=lambda name: det)
    svc = GalleryService(load_settings(), detectors=detectors)
    images, table = synthetic_set
    _, g, _ = svc.build("cropped", images, table, crop_with="any-detector")
    assert all(r.bbox == (0.25, 0.25, 0.5, 0.5) for r in g.records)
    h, w = g.image(0).shape[:2]
    assert (w, h) == (288, 216)  # 0.5 of 480x360 plus a 10% margin each side
    ans = svc.lookup("cropped", photo(coat(1000), seed=3), crop_with="any-detector")
    assert ans.bbox == (0.25, 0.25, 0.5, 0.5) and ans.crop.shape[:2] == (216, 288)
    nothing = SimpleNamespace(info=det.info, prepare=det.prepare, run=lambda b, c: [()] * len(b))
    svc2 = GalleryService(load_settings(), detectors=SimpleNamespace(load=lambda name: nothing))
    ans = svc2.lookup("cropped", photo(coat(1000), seed=3), crop_with="any-detector")
    assert ans.bbox is None and ans.crop.shape[:2] == (360, 480)  # no animal: the whole frame
    # the crop threshold reaches the detector: above the animal's 0.80 there is no crop
    filtering = SimpleNamespace(info=det.info, prepare=det.prepare,
                                run=lambda b, conf: [tuple(d for d in boxes if d.conf >= conf)] * len(b))
    strict = GalleryService(load_settings(), detectors=SimpleNamespace(load=lambda name: filtering),
                            crop_threshold=0.9)
    assert strict.lookup("cropped", photo(coat(1000), seed=3), crop_with="any-detector").bbox is None
    loose = GalleryService(load_settings(), detectors=SimpleNamespace(load=lambda name: filtering),
                           crop_threshold=0.05)
    assert loose.lookup("cropped", photo(coat(1000), seed=3), crop_with="any-detector").bbox == (0.25, 0.25, 0.5, 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        GalleryService(load_settings(), crop_threshold=0)


def test_app_galleries_belong_to_their_creator(built):
    svc, root, gallery, _ = built          # 'cats' is shared (built with the CLI)
    alice, bob = "browser:alice", "browser:bob"
    svc.enrol("alices", photo(coat(61), 1), "a1", create=True, owner=alice)
    svc.enrol("alices", photo(coat(62), 1), "a2", owner=alice)
    assert svc.names(alice) == ["alices", "cats"] and svc.names(bob) == ["cats"]
    assert svc.shared_names() == ["cats"]
    for attempt in (lambda: svc.open("alices", bob),
                    lambda: svc.lookup("alices", photo(coat(61), 2), owner=bob),
                    lambda: svc.enrol("alices", photo(coat(63), 1), "b1", owner=bob)):
        with pytest.raises(GalleryError, match="no gallery named 'alices'"):
            attempt()
    assert len(svc.open("alices", alice)) == 2
    with pytest.raises(GalleryError):  # app users cannot reach outside the galleries folder
        svc.open("../galleries/alices", bob)
    # off a public Space, shared galleries accept enrolments from the app
    svc.enrol("cats", photo(coat(64), 1), "c-new", owner=bob)
    assert len(svc.open("cats", alice)) == 10
    # an app user's galleries live in their own folder, named by a hash (never the token)
    mine = svc.path("alices", alice)
    assert mine.parent == svc.private_root(alice) and mine.parent.parent == svc.root / ".owners"
    assert alice not in str(mine) and svc.path("alices", bob) != mine
    assert svc.wait_calibrated(timeout=120)


def test_public_space_needs_a_login_to_write(built):
    import dataclasses

    svc, root, gallery, _ = built
    public = GalleryService(dataclasses.replace(svc.settings, public_space=True))
    with pytest.raises(GalleryError, match="log in with Hugging Face"):
        public.enrol("mine", photo(coat(71), 1), "x", create=True, owner="browser:anon")
    with pytest.raises(GalleryError, match="shared and read-only"):
        public.enrol("cats", photo(coat(71), 1), "x", owner="hf:alice")
    public.enrol("mine", photo(coat(71), 1), "x", create=True, owner="hf:alice")
    assert public.names("hf:alice") == ["cats", "mine"] and public.names("hf:bob") == ["cats"]
    assert public.lookup("cats", photo(coat(1000), 9), owner="hf:bob").result.identity == "ana"
