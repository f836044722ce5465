"""Galleries without global locks: an enrolment (and its recalibration) in one gallery never
blocks lookups in another; recalibration runs off the request path, coalesced; a new gallery is
usable as soon as its first calibratable enrolment returns; foreign and missing galleries give
the same answer, and app messages carry no server path.

The timing bounds are concurrency checks, not benchmarks: the slow step sleeps 3 s and the
other gallery's lookup must finish while it is still running."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from tests.reid.synthetic import coat, photo
from wildspace.reid.gallery import GalleryError, version_dir
from wildspace.services.galleries import GalleryService, hide_paths
from wildspace.settings import load_settings

SLOW = 3.0


class Calls:
    """A stand-in for ``GalleryService.calibrate`` that sleeps first and counts its calls."""

    def __init__(self, real, delay: float):
        self.real, self.delay, self.sizes = real, delay, []
        self.started = threading.Event()

    def __call__(self, gallery):
        self.sizes.append(len(gallery))
        self.started.set()
        time.sleep(self.delay)
        self.real(gallery)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _thread(fn, errors: list) -> threading.Thread:
    def run():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.fixture
def two_galleries(synthetic_set):
    images, table = synthetic_set
    svc = GalleryService(load_settings())
    svc.build("a", images, table)
    svc.build("b", images, table)
    return svc


def test_enrolment_in_a_never_blocks_lookups_in_b(two_galleries, monkeypatch):
    # the worst case: a synchronous (CLI-style) enrolment, calibration on the request path
    svc = GalleryService(two_galleries.settings, background_calibration=False)
    query = photo(coat(1001), seed=999)
    svc.lookup("b", query)  # warm: the gallery is in memory
    alone, t_alone = _timed(lambda: svc.lookup("b", query))
    slow = Calls(GalleryService.calibrate, SLOW)
    monkeypatch.setattr(GalleryService, "calibrate", staticmethod(slow))
    errors: list = []
    enrolment = _thread(lambda: svc.enrol("a", photo(coat(4242), seed=1), "dax"), errors)
    assert slow.started.wait(30)
    during, t_during = _timed(lambda: svc.lookup("b", query))
    a_during, _ = _timed(lambda: svc.lookup("a", query))  # A itself: its live version answers
    b_finished_first = enrolment.is_alive()
    enrolment.join(60)
    print(f"lookup in B alone {t_alone:.3f} s, during A's {SLOW:.0f} s enrolment {t_during:.3f} s")
    assert not errors
    assert b_finished_first, "B's lookup waited for A's enrolment"
    assert t_during < 1.5
    assert during.result == alone.result and a_during.result.identity == "bo"
    assert len(svc.open("a")) == 10 and len(svc.open("b")) == 9


def test_enrol_returns_before_the_recalibration_which_is_coalesced(two_galleries, monkeypatch):
    svc = two_galleries
    before = svc.open("a").calibrations
    slow = Calls(GalleryService.calibrate, SLOW)
    monkeypatch.setattr(GalleryService, "calibrate", staticmethod(slow))
    g, took = _timed(lambda: svc.enrol("a", photo(coat(4242), seed=1), "dax"))
    assert slow.started.wait(30) and took < SLOW  # the sleep is in the background thread
    assert g.calibrations == before and len(svc.open("a")) == 10  # saved at once, old calibration
    # lookups in A meanwhile use the live version and its (previous) calibration
    assert svc.lookup("a", photo(coat(1001), seed=999)).result.identity == "bo"
    for seed in (2, 3, 4):
        svc.enrol("a", photo(coat(4242), seed=seed), "dax")
    assert svc.wait_calibrated("a", timeout=120)
    assert len(slow.sizes) <= 2 and slow.sizes[-1] == 13  # coalesced: the latest version last
    live = svc.open("a")
    assert len(live) == 13 and live.calibrations != before
    monkeypatch.undo()
    reference = dataclasses.replace(live, calibrations={})
    GalleryService.calibrate(reference)
    assert live.calibrations == reference.calibrations
    fresh = GalleryService(svc.settings)  # what is on disk is the recalibrated version
    assert fresh.open("a").calibrations == reference.calibrations
    assert fresh.lookup("a", photo(coat(4242), seed=9)).result.identity == "dax"


def test_a_new_gallery_is_usable_when_the_enrolment_returns(tmp_path):
    svc = GalleryService(load_settings())
    me = "browser:someone"
    g = svc.enrol("fresh", photo(coat(8101), 1), "Pip", create=True, owner=me)
    assert g.calibrations == {}  # one animal: nothing to calibrate yet
    svc.enrol("fresh", photo(coat(8102), 1), "Pop", owner=me)
    g = svc.enrol("fresh", photo(coat(8101), 2), "Pip", owner=me)  # now calibratable
    assert "local" in g.calibrations  # calibrated before it was saved, no waiting
    ans = svc.lookup("fresh", photo(coat(8101), 3), owner=me)
    assert ans.result.identity == "Pip"
    assert svc.wait_calibrated(timeout=120)


def test_loading_an_embedder_holds_only_its_own_lock(two_galleries, monkeypatch):
    import wildspace.reid.embedders as embedders

    svc = two_galleries
    loads = []

    def load(name, settings, device):
        loads.append(name)
        if name == "slow":
            time.sleep(SLOW)
        return object()

    monkeypatch.setattr(embedders, "load_embedder", load)
    errors: list = []
    got = []
    first = _thread(lambda: got.append(svc.embedder("slow")), errors)
    second = _thread(lambda: got.append(svc.embedder("slow")), errors)
    time.sleep(0.2)
    _, t_other = _timed(lambda: svc.embedder("quick"))
    _, t_lookup = _timed(lambda: svc.lookup("b", photo(coat(1001), seed=999)))
    still_loading = first.is_alive()
    first.join(60)
    second.join(60)
    assert not errors and still_loading
    assert t_other < 1.5 and t_lookup < 1.5
    assert loads.count("slow") == 1 and got[0] is got[1]  # loaded once, shared


def _message(fn) -> str:
    with pytest.raises(GalleryError) as err:
        fn()
    return str(err.value)


def test_a_foreign_gallery_and_a_missing_one_answer_the_same(two_galleries):
    svc = two_galleries
    alice, bob = "browser:alice", "browser:bob"
    q = photo(coat(61), 2)
    attempts = (lambda: svc.open("secret", bob),
                lambda: svc.lookup("secret", q, owner=bob),
                lambda: svc.enrol("secret", q, "x", owner=bob))
    missing = [_message(f) for f in attempts]
    assert svc.names(bob) == ["a", "b"]
    svc.enrol("secret", photo(coat(61), 1), "a1", create=True, owner=alice)
    foreign = [_message(f) for f in attempts]
    assert missing == foreign == ["no gallery named 'secret'"] * 3
    assert svc.names(bob) == ["a", "b"] and svc.names(alice) == ["a", "b", "secret"]
    # creating it: bob gets a gallery of his own with that name; alice's is untouched
    mine = svc.enrol("secret", photo(coat(99), 1), "b1", create=True, owner=bob)
    assert mine.identities.tolist() == ["b1"]
    assert svc.open("secret", alice).identities.tolist() == ["a1"]
    # a gallery of the older layout (top level, OWNER file) answers the same to others
    legacy = svc.root / "legacy"
    svc.build(str(legacy), *_set(svc))
    (legacy / "OWNER").write_text(alice, encoding="utf-8")
    assert _message(lambda: svc.open("legacy", bob)) == "no gallery named 'legacy'"
    assert len(svc.open("legacy", alice)) == 9 and "legacy" not in svc.names(bob)


def _set(svc):
    from tests.reid.synthetic import write_set

    folder = svc.settings.home / "set"
    folder.mkdir(exist_ok=True)
    return folder, write_set(folder)


def test_app_messages_name_no_server_path(two_galleries):
    svc = GalleryService(two_galleries.settings)  # nothing in memory yet
    home = str(svc.settings.home)
    (version_dir(svc.root / "b") / "gallery.json").write_text("{ not json")
    for fn in (lambda: svc.open("b", "browser:x"),
               lambda: svc.lookup("b", photo(coat(1), 1), owner="browser:x"),
               lambda: svc.enrol("b", photo(coat(1), 1), "y", owner="browser:x")):
        msg = _message(fn)
        assert "gallery 'b'" in msg and "unreadable gallery.json" in msg
        assert home not in msg and "/" not in msg, msg
    # the CLI names the folder it was given
    assert home in _message(lambda: svc.open("b"))


def test_hide_paths():
    assert hide_paths("cannot open /srv/data/galleries/x/versions/3: gone") == "cannot open 3: gone"
    assert hide_paths("'/tmp/gradio/ab/photo.jpg' is broken") == "'photo.jpg' is broken"
    assert hide_paths("/data is full") == "data is full"
    assert hide_paths("C:\\Users\\me\\x.jpg broke") == "x.jpg broke"
    kept = "left/right, 1/2, km/h and http://example.org/a/b"
    assert hide_paths(kept) == kept


def test_a_failed_background_recalibration_is_tried_again(two_galleries, monkeypatch, caplog):
    svc = two_galleries
    real, calls = GalleryService.calibrate, []

    def flaky(gallery):
        calls.append(len(gallery))
        if len(calls) == 1:  # e.g. sklearn meeting a module another thread is importing
            raise AttributeError("partially initialized module")
        real(gallery)

    monkeypatch.setattr(GalleryService, "calibrate", staticmethod(flaky))
    before = svc.open("a").calibrations
    svc.enrol("a", photo(coat(4242), seed=1), "dax")
    assert svc.wait_calibrated("a", timeout=120)
    assert calls == [10, 10] and "trying again" in caplog.text
    assert svc.open("a").calibrations not in ({}, before)
