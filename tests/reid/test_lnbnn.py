"""HotSpotter-style scoring on hand-made descriptors: LNBNN weights, one vote per descriptor
per identity, votes summed per identity, the left-out images out of the index, background,
mirrored queries and spatial verification."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.reid.lnbnn import LnbnnConfig, lnbnn_scores
from wildspace.reid.local_features import LocalFeatures

SQRT2 = float(np.sqrt(2.0))


def unit(i: int, j: int | None = None, t: float = 0.0) -> np.ndarray:
    """Basis vector ``e_i`` (turned by angle ``t`` towards ``e_j``): unit RootSIFT-like rows."""
    v = np.zeros(128, np.float32)
    v[i] = np.cos(t)
    if j is not None:
        v[j] = np.sin(t)
    return v


def feats(descs, xy=None, size=(100, 100)) -> LocalFeatures:
    d = np.stack(descs).astype(np.float32)
    xy = np.asarray(xy if xy is not None else [(10.0 + 7 * n, 50.0) for n in range(len(d))], np.float32)
    return LocalFeatures(xy=xy, descriptors=d, size=size)


def sizes(n: int):
    """Distinct frame sizes: nothing is at 'the same place of a same-size frame' (no static check)."""
    return [(100 + i, 100) for i in range(n)]


NO_SV = LnbnnConfig(k=1, depth=4, shortlist=0)


def test_a_descriptor_as_close_to_two_animals_votes_nothing():
    s = sizes(3)
    gallery = [feats([unit(0)], size=s[0]), feats([unit(0)], size=s[1]), feats([unit(9)], size=s[2])]
    q = [feats([unit(0)], size=(50, 50))]
    r = lnbnn_scores(q, gallery, ["A", "B", "C"], config=NO_SV)
    assert r.labels.tolist() == ["A", "B", "C"]
    assert np.allclose(r.names, 0.0, atol=1e-6)
    # the identity-aware normaliser: k=2 lets both vote, each normalised by the other animal
    r = lnbnn_scores(q, gallery, ["A", "B", "C"], config=LnbnnConfig(k=2, depth=3, normaliser="other",
                                                                      shortlist=0))
    assert np.allclose(r.names, 0.0, atol=1e-6)
    # a distinctive descriptor (only A has it) votes the full distance to the crowd
    gallery[1] = feats([unit(5)], size=s[1])
    r = lnbnn_scores(q, gallery, ["A", "B", "C"], config=NO_SV)
    assert r.names[0, 0] == pytest.approx(SQRT2, abs=1e-5) and np.allclose(r.names[0, 1:], 0.0, atol=1e-6)


def test_votes_sum_per_identity_once_per_query_descriptor():
    s = sizes(5)
    fillers = [unit(20 + n) for n in range(3)]
    gallery = [feats([unit(0)], size=s[0]),            # A1: u
               feats([unit(1)], size=s[1]),            # A2: v
               feats([unit(0)], size=s[2]),            # A3: u again (a burst twin of A1)
               feats(fillers[:2], size=s[3]),          # B
               feats(fillers[2:], size=s[4])]          # B
    ids = ["A", "A", "A", "B", "B"]
    q = [feats([unit(0), unit(1)], size=(50, 50))]
    r = lnbnn_scores(q, gallery, ids, config=LnbnnConfig(k=2, depth=4, shortlist=0))
    # u votes for A1 and A3 (both sqrt2 closer than the third neighbour) but once for A;
    # v votes for A2: A = 2 sqrt2, B nothing
    assert r.names[0, 0] == pytest.approx(2 * SQRT2, abs=1e-5)
    assert r.names[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert r.frames[0, :3] == pytest.approx([SQRT2, SQRT2, SQRT2], abs=1e-5)
    kp, frame, weight = r.votes[0]
    assert sorted(zip(kp.tolist(), frame.tolist())) == [(0, 0), (0, 2), (1, 1)]


def test_the_left_out_encounter_neither_votes_nor_normalises():
    s = sizes(4)
    gallery = [feats([unit(0)], size=s[0]),                     # E: the query's own encounter
               feats([unit(0, 1, 0.3)], size=s[1]),             # A: close to the query
               feats([unit(0, 2, 0.6)], size=s[2]),             # B: farther
               feats([unit(30)], size=s[3])]                    # C
    ids = ["E", "A", "B", "C"]
    q = [feats([unit(0)], size=(50, 50))]
    exclude = np.array([[True, False, False, False]])
    r = lnbnn_scores(q, gallery, ids, exclude, config=NO_SV)
    labels = r.labels.tolist()
    d_a, d_b = (float(np.linalg.norm(unit(0) - unit(0, j, t))) for j, t in ((1, 0.3), (2, 0.6)))
    assert r.names[0, labels.index("A")] == pytest.approx(d_b - d_a, abs=1e-5)
    assert r.names[0, labels.index("E")] == -np.inf and r.frames[0, 0] == -np.inf
    # exactly as if E were not in the gallery at all
    alone = lnbnn_scores(q, gallery[1:], ids[1:], config=NO_SV)
    assert alone.names[0].tolist() == [r.names[0, labels.index(x)] for x in alone.labels.tolist()]
    # without the exclusion E wins and A's match is only the normaliser
    r = lnbnn_scores(q, gallery, ids, config=NO_SV)
    assert r.names[0, labels.index("E")] == pytest.approx(d_a, abs=1e-5)
    assert r.names[0, labels.index("A")] == pytest.approx(0.0, abs=1e-6)


def test_static_background_is_removed_and_mirrored_queries_count():
    size = (100, 100)
    gallery = [feats([unit(0), unit(3)], xy=[(10, 10), (60, 60)], size=size), feats([unit(40)], size=(90, 90))]
    q = [feats([unit(0), unit(3)], xy=[(10, 10), (20, 80)], size=size)]
    r = lnbnn_scores(q, gallery, ["A", "B"], config=NO_SV)
    # e0 sits at the same place of a same-size frame: scenery; e3 moved: the animal
    assert r.names[0, 0] == pytest.approx(SQRT2, abs=1e-5)
    kp, _, _ = r.votes[0]
    assert kp.tolist() == [1]
    # the mirrored query matches B; each identity keeps its better side
    mirrored = [feats([unit(40)], xy=[(30, 30)], size=size)]
    r = lnbnn_scores(q, gallery, ["A", "B"], config=NO_SV, mirrored=mirrored)
    assert r.names[0] == pytest.approx([SQRT2, SQRT2], abs=1e-5)


def test_spatial_verification_keeps_consistent_votes_only():
    rng = np.random.default_rng(0)
    pts = rng.uniform(10, 90, (8, 2)).astype(np.float32)
    descs = [unit(n) for n in range(8)]
    consistent = feats(descs, xy=pts + 5.0, size=(101, 100))                   # a shift of the query
    scrambled = feats([unit(8 + n) for n in range(8)], xy=rng.uniform(10, 90, (8, 2)), size=(102, 100))
    q = [feats(descs + [unit(8 + n) for n in range(8)], xy=np.concatenate([pts, pts]), size=(50, 50))]
    gallery = [consistent, scrambled, feats([unit(100 + n) for n in range(4)], size=(103, 100))]
    cfg = LnbnnConfig(k=1, depth=4, shortlist=3, ransac_px=1.0, min_inliers=4)
    r = lnbnn_scores(q, gallery, ["A", "B", "C"], config=cfg)
    assert r.names[0, 0] == pytest.approx(8 * SQRT2, abs=1e-4)
    assert r.names[0, 1] == pytest.approx(0.0, abs=1e-6)  # eight votes, no consistent geometry
    unverified = lnbnn_scores(q, gallery, ["A", "B", "C"], config=LnbnnConfig(k=1, depth=4, shortlist=0))
    assert unverified.names[0, 1] == pytest.approx(8 * SQRT2, abs=1e-4)


def test_cross_identity_background_uses_gallery_labels_only():
    # A and B were photographed at station s1 and both show the same rock (e7, slightly
    # differently): in the gallery that rock matches another animal at the same station, so
    # it is scenery; the query's rock is a little closer to A's and would otherwise vote A
    gallery = [feats([unit(7, 60, 0.1), unit(1)], size=(101, 100)),
               feats([unit(7, 61, 0.2), unit(2)], size=(102, 100)), feats([unit(50)], size=(103, 100))]
    q = [feats([unit(7)], size=(50, 50))]
    cfg = LnbnnConfig(k=1, depth=4, shortlist=0, cross_k=1)
    apart = lnbnn_scores(q, gallery, ["A", "B", "C"], config=cfg, gallery_stations=["s1", "s2", "s3"])
    assert apart.names[0, 0] > 0.05 and apart.names[0, 1] == pytest.approx(0.0, abs=1e-6)
    shared = lnbnn_scores(q, gallery, ["A", "B", "C"], config=cfg, gallery_stations=["s1", "s1", "s3"])
    assert shared.names[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_bad_settings_are_refused():
    from wildspace.errors import UsageError

    with pytest.raises(UsageError, match="normaliser"):
        LnbnnConfig(normaliser="median").check()
    with pytest.raises(UsageError, match="depth"):
        LnbnnConfig(k=4, depth=4).check()


def test_lnbnn_pooling_in_the_matcher_and_the_evaluation(synthetic_set):
    from tests.reid.synthetic import coat, photo
    from wildspace.reid.build import build_gallery, read_identity_table
    from wildspace.reid.evaluate import leave_one_out
    from wildspace.reid.local_features import extract
    from wildspace.reid.matching import Matcher, MatchingError

    images, table = synthetic_set
    gallery, _ = build_gallery(images, read_identity_table(table), "cats")
    matcher = Matcher(gallery, "local", pooling="lnbnn")
    matcher.calibrate()
    result = matcher.lookup(extract(photo(coat(1001), seed=999)))  # a new photo of 'bo'
    assert result.matches[0].identity == "bo" and result.verdict == "known"
    assert gallery.identities[result.matches[0].image_index] == "bo"
    out = leave_one_out(gallery, "local", pooling="lnbnn")
    assert out["pooling"] == "lnbnn" and out["top1"] >= 0.8
    import dataclasses

    embedded = dataclasses.replace(gallery, embeddings=np.eye(len(gallery), dtype=np.float32), embedder="e",
                                   meta={"pooling": "lnbnn"})
    with pytest.raises(MatchingError, match="method 'local'"):
        Matcher(embedded, "embed", pooling="lnbnn")
    assert Matcher(embedded, "fused").pooling == "max"  # a gallery's lnbnn pooling is the local matcher's


def test_the_same_scene_from_a_camera_that_moved_is_background():
    rng = np.random.default_rng(1)
    descs = [unit(n) for n in range(20)]
    filler = feats([unit(100 + n) for n in range(4)], size=(90, 90))
    cfg = LnbnnConfig(k=1, depth=4, shortlist=3, ransac_px=2.0)
    for spread, kept in ((80.0, False), (15.0, True)):
        pts = rng.uniform(10, 10 + spread, (20, 2)).astype(np.float32)
        q = [feats(descs, xy=pts, size=(100, 100))]
        again = feats(descs, xy=pts + np.float32(12.0), size=(100, 100))  # shifted 12 px: not "static"
        r = lnbnn_scores(q, [again, filler], ["A", "B"], config=cfg)
        # the whole frame under a near-identity transform is the scene; a patch of it is an animal
        assert (r.names[0, 0] > 1.0) == kept
        off = lnbnn_scores(q, [again, filler], ["A", "B"], config=LnbnnConfig(k=1, depth=4, ransac_px=2.0,
                                                                               scene_shift=0.0))
        assert off.names[0, 0] > 10 * SQRT2  # without the scene check both count


def test_reid_evaluate_cli_with_lnbnn_pooling(synthetic_set, capsys):
    import json

    from wildspace.cli import main

    images, table = synthetic_set
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table), "--leave-out", "image",
                 "--pooling", "lnbnn", "--unknown", "bo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pooling"] == "lnbnn" and out["top1"] >= 0.8
    assert out["open_set"]["pooling"] == "lnbnn" and out["open_set"]["unknown_queries"] == 3
    assert out["open_set"]["new_rate"] is not None
