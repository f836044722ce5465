"""Learned local features (ALIKED + LightGlue through kornia): loading the published weight
layouts through the model store, the pair scoring plumbing and the evaluations that take a
precomputed score matrix.

The networks here are random-weight copies of the real architectures (ALIKED-N16 as kornia
builds it, a small LightGlue), saved as the published ``.pth`` state dicts and imported as the
shipped specs ``aliked-n16`` and ``lightglue-aliked``. Random weights match randomly, so no
test here asserts a match quality; what is measured on real weights is in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reid.synthetic import coat, photo

torch = pytest.importorskip("torch")
pytest.importorskip("kornia")


def _cvg_layout(state: dict) -> dict:
    """kornia's LightGlue keys -> cvg/LightGlue's published ones (``self_attn.i``)."""
    out = {}
    for k, v in state.items():
        if k.startswith("transformers."):
            _, i, part, rest = k.split(".", 3)
            k = f"{part}.{i}.{rest}"
        out[k] = v
    return out


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    from kornia.feature import ALIKED, LightGlue

    folder = tmp_path_factory.mktemp("learned-weights")
    torch.manual_seed(0)
    aliked = ALIKED(model_name="aliked-n16", max_num_keypoints=64)
    state = {k: v for k, v in aliked.state_dict().items() if not k.endswith("hw_grid")}
    torch.save(state, folder / "aliked-n16.pth")
    lg = LightGlue(features=None, input_dim=128, descriptor_dim=32, n_layers=2, num_heads=4, flash=False)
    lg_state = _cvg_layout({k: v for k, v in lg.state_dict().items() if k != "confidence_thresholds"})
    torch.save(lg_state, folder / "aliked_lightglue.pth")
    partial = dict(lg_state)
    partial.pop(next(k for k in partial if k.startswith("self_attn.1.")))
    torch.save(partial, folder / "partial_lightglue.pth")
    return {"aliked": folder / "aliked-n16.pth", "lightglue": folder / "aliked_lightglue.pth",
            "partial": folder / "partial_lightglue.pth"}


@pytest.fixture
def imported(weight_files):
    """Both random-weight files imported as the shipped specs (first import records the hash)."""
    from wildspace.cli import main

    assert main(["models", "import", str(weight_files["aliked"]), "--as", "aliked-n16"]) == 0
    assert main(["models", "import", str(weight_files["lightglue"]), "--as", "lightglue-aliked"]) == 0
    return weight_files


def _small():
    from wildspace.reid.learned import LearnedConfig

    return LearnedConfig(max_side=160, keypoints=64)


def test_static_matches_are_the_same_place_in_two_frames():
    from wildspace.reid.learned import static_matches

    kp0 = np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 10.0]])
    kp1 = np.array([[10.5, 10.0], [80.0, 20.0], [90.0, 10.9]])
    # diagonal of 60x80 is 100: 0.01 of it is 1 px
    assert static_matches(kp0, kp1, (80, 60), 0.01).tolist() == [True, False, True]
    assert not static_matches(kp0, kp1, (80, 60), 0.0).any()
    assert static_matches(kp0[:0], kp1[:0], (80, 60), 0.01).shape == (0,)


def test_moved_camera_scenery_is_a_near_identity_transform_over_much_of_the_frame():
    from wildspace.reid.learned import moved_scene

    rng = np.random.default_rng(0)
    size = (400, 300)
    scene = rng.uniform([0, 0], size, (40, 2))
    shifted = scene + [12.0, -5.0]  # the camera re-mounted a few px off
    assert moved_scene(scene, shifted, size).all()
    # plus 10 matches on an animal that moved: they stay
    animal0 = rng.uniform([50, 50], [120, 120], (10, 2))
    animal1 = animal0 * 1.0 + [200.0, 100.0]
    mixed = moved_scene(np.vstack([scene, animal0]), np.vstack([shifted, animal1]), size)
    assert mixed[:40].all() and not mixed[40:].any()
    # a consistent group in one corner (the animal itself, slightly moved) is not scenery
    corner = rng.uniform([0, 0], [80, 60], (30, 2))
    assert not moved_scene(corner, corner + [5.0, 3.0], size).any()
    # a large shift or a zoom is another view, not a re-mounted camera
    assert not moved_scene(scene, scene + [150.0, 0.0], size).any()
    assert not moved_scene(scene, scene * 1.6, size).any()
    assert not moved_scene(scene[:5], shifted[:5], size).any()  # too few to tell


def test_prepare_cuts_caption_bars_of_frames_not_chips():
    from wildspace.reid.learned import LearnedConfig, prepare

    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[:10] = 255  # a caption bar
    cfg = LearnedConfig(max_side=100, caption_mask=0.1)
    frame = prepare(rgb, cfg)
    assert frame.shape == (40, 100, 3) and frame.max() == 0  # 80 rows left, long side 100
    chip = prepare(rgb, cfg, chip=True)
    assert chip.shape == (50, 100, 3) and chip[0].max() == 255


def test_matcher_loads_the_published_layouts_through_the_store(imported):
    from wildspace.reid.learned import load_learned_matcher

    m = load_learned_matcher(config=_small())
    assert m.cache_dir is not None and "reid-learned" in str(m.cache_dir)
    assert len(m.weights_id.split(":")) == 2
    img = photo(coat(1), seed=3)
    f = m.extract(img)
    assert f.keypoints.shape[1] == 2 and f.descriptors.shape == (len(f.keypoints), 128)
    assert max(f.size) == 160 and 0 < len(f.keypoints) <= 64
    again = m.extract(img)  # from the content-hash cache
    assert m.cache_hits == 1 and np.array_equal(again.descriptors, f.descriptors)
    assert m.feature_key(img, chip=True) != m.feature_key(img)
    idx, conf = m.matches(f, m.extract(photo(coat(1), seed=4)))
    assert idx.ndim == 2 and idx.shape[1] == 2 and len(conf) == len(idx)
    assert (idx[:, 0] < len(f.keypoints)).all()


def test_a_file_that_does_not_fit_is_refused(imported, weight_files, tmp_path):
    from wildspace.hub.specs import SpecRegistry
    from wildspace.reid.learned import LearnedError, build_aliked, build_lightglue
    from wildspace.settings import load_settings

    reg = SpecRegistry(load_settings().spec_dirs)
    with pytest.raises(LearnedError, match="does not fit"):
        build_lightglue(reg.get("lightglue-aliked"), weight_files["partial"], _small())
    with pytest.raises(LearnedError, match="not a LightGlue state dict"):
        build_lightglue(reg.get("lightglue-aliked"), weight_files["aliked"], _small())
    with pytest.raises(LearnedError, match="does not fit"):
        build_aliked(reg.get("aliked-n16"), weight_files["lightglue"], _small())


def test_only_match_specs_make_a_matcher(imported):
    from wildspace.hub.specs import SpecError, parse_spec
    from wildspace.reid.learned import LearnedError, load_learned_matcher

    with pytest.raises(LearnedError, match="not a matcher"):
        load_learned_matcher(config=_small(), keypoint_model="megadetector-v5a")
    base = {"name": "x-match", "task": "match", "family": "kornia", "input_size": 1024,
            "labels": [], "license": "MIT", "card": "c",
            "weights": {"filename": "x.pth", "sha256": "0" * 64, "local_only": True}}
    with pytest.raises(SpecError, match="arch"):
        parse_spec({**base, "arch": "superpoint"})
    with pytest.raises(SpecError, match="family kornia"):
        parse_spec({**base, "family": "timm", "arch": "aliked-n16"})
    assert parse_spec({**base, "arch": "aliked-t16"}).extra["arch"] == "aliked-t16"


class _CountingMatcher:
    """score_matrix's bookkeeping without networks: feature ``i`` has ``i`` keypoints, a pair
    scores ``i * 10 + j``."""

    def __init__(self):
        from wildspace.reid.learned import LearnedConfig, LearnedMatcher

        self.inner = LearnedMatcher(torch.nn.Identity(), torch.nn.Identity(), LearnedConfig())
        self.seen: list[tuple[int, int, bool]] = []
        self.inner.pair_score = self._score  # type: ignore[method-assign]

    def _score(self, a, b, same_place):
        i, j = len(a.keypoints), len(b.keypoints)
        self.seen.append((i, j, same_place))
        return float(i * 10 + j)


def _feats(n):
    from wildspace.reid.learned import LearnedFeatures

    return [LearnedFeatures(np.zeros((i, 2), np.float32), np.zeros((i, 128), np.float32), (8, 6))
            for i in range(n)]


def test_symmetric_score_matrix_runs_each_pair_once_and_never_an_excluded_one():
    c = _CountingMatcher()
    feats = _feats(4)
    exclude = np.eye(4, dtype=bool)
    exclude[0, 1] = exclude[1, 0] = True
    s = c.inner.score_matrix(feats, feats, exclude, ["A", "A", "B", "A"], ["A", "A", "B", "A"],
                             symmetric=True)
    pairs = sorted((a, b) for a, b, _ in c.seen)
    assert pairs == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  # 6 pairs less the excluded one
    assert np.array_equal(s, s.T) and np.isneginf(s[exclude]).all()
    assert s[0, 3] == s[3, 0] == 3.0
    # "same place" only within one station and one frame size
    assert dict(((a, b), p) for a, b, p in c.seen) == {(0, 2): False, (0, 3): True, (1, 2): False,
                                                       (1, 3): True, (2, 3): False}
    with pytest.raises(ValueError, match="queries to be the gallery"):
        c.inner.score_matrix(feats[:2], feats, symmetric=True)
    c.seen.clear()
    q = c.inner.score_matrix(feats[:2], feats, np.array([[1, 0, 0, 1], [0, 0, 1, 0]], bool))
    assert sorted((a, b) for a, b, _ in c.seen) == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 3)]
    assert np.isneginf(q[0, 0]) and q[1, 3] == 13.0


def _hand_gallery():
    """Six photos: ana in encounters e1 (2 photos) and e2, bo in e3 and e4, cy once (e5)."""
    from wildspace.reid.gallery import GalleryData, Record

    spec = [("ana", "S1", "2024-01-01 10:00"), ("ana", "S1", "2024-01-01 10:01"),
            ("ana", "S2", "2024-02-01 10:00"), ("bo", "S1", "2024-03-01 10:00"),
            ("bo", "S2", "2024-04-01 10:00"), ("cy", "S3", "2024-05-01 10:00")]
    records = [Record(f"f{i}.jpg", who, "", None, date, station, f"f{i}.jpg")
               for i, (who, station, date) in enumerate(spec)]
    return GalleryData(name="hand", records=records, images=[b""] * len(records))


def _hand_scores():
    s = np.full((6, 6), 2.0)
    s[0, 1] = s[1, 0] = 500.0  # the same burst: must never count
    for a, b in ((0, 2), (1, 2), (3, 4)):
        s[a, b] = s[b, a] = 40.0  # the same animal on another night
    s[1, 3] = s[3, 1] = 30.0  # a look-alike, weaker than ana's other night
    return s


def test_leave_one_out_with_precomputed_scores_leaves_out_the_burst():
    from wildspace.reid.evaluate import leave_one_out
    from wildspace.reid.events import gallery_encounters

    g = _hand_gallery()
    groups, _ = gallery_encounters(g, 30.0)
    assert groups[0] == groups[1] and len(set(groups)) == 5
    out = leave_one_out(g, "lightglue", groups, scores=_hand_scores())
    assert out["method"] == "lightglue" and out["calibration_pairs"] == "cross-encounter"
    assert out["top1"] == 1.0 and out["unknown_queries"] == 1  # cy has no other photo
    # image-level leave-out: photo 1's best is photo 0 (the burst), still ana
    loio = leave_one_out(g, "lightglue", None, scores=_hand_scores())
    assert loio["top1"] == 1.0
    # the burst score is what would win if encounters were not left out: make it wrong
    s = _hand_scores()
    s[0, 3] = s[3, 0] = 45.0
    s[0, 2] = s[2, 0] = 1.0
    wrong = leave_one_out(g, "lightglue", groups, scores=s)
    assert wrong["top1"] < 1.0


def test_open_set_with_precomputed_scores():
    from wildspace.reid.evaluate import open_set_split
    from wildspace.reid.events import gallery_encounters

    g = _hand_gallery()
    groups, _ = gallery_encounters(g, 30.0)
    s = _hand_scores()
    s[5, :5] = s[:5, 5] = 1.0  # cy matches nothing
    out = open_set_split(g, ["cy"], "lightglue", groups, scores=s)
    assert out["unknown_queries"] == 1 and out["new_rate"] == 1.0
    assert out["known_queries"] == 5 and out["known_top1"] == 1.0


def test_precomputed_methods_check_their_scores():
    from wildspace.errors import UsageError
    from wildspace.reid.evaluate import leave_one_out

    g = _hand_gallery()
    with pytest.raises(UsageError, match="needs its pair scores"):
        leave_one_out(g, "lightglue")
    with pytest.raises(UsageError, match=r"\(6, 6\)"):
        leave_one_out(g, "lightglue", scores=np.zeros((5, 5)))
    with pytest.raises(UsageError, match="pools max or events"):
        leave_one_out(g, "lightglue", pooling="keypoints", scores=_hand_scores())


def test_cli_evaluates_with_lightglue(imported, synthetic_set, capsys):
    from wildspace.cli import main

    images, table = synthetic_set
    args = ["reid", "evaluate", "--images", str(images), "--identities", str(table),
            "--method", "lightglue", "--learned-side", "160", "--learned-keypoints", "64"]
    assert main(args + ["--unknown", "bo", "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["method"] == "lightglue" and out["images"] == 9 and out["encounters"] == 3
    assert out["left_out"].startswith("left out: the query's whole encounter")
    assert out["open_set"]["unknown_queries"] == 3
    assert "lightglue: " in cap.err and "pairs" in cap.err
    assert main(args + ["--pooling", "lnbnn"]) == 1
    assert "needs --method local" in capsys.readouterr().err


def test_cli_says_how_to_bring_the_weights_when_they_are_missing(synthetic_set, capsys):
    from wildspace.cli import main

    images, table = synthetic_set
    assert main(["reid", "evaluate", "--images", str(images), "--identities", str(table),
                 "--method", "lightglue"]) == 1
    err = capsys.readouterr().err
    assert "aliked-n16" in err and "models import" in err
