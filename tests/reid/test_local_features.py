"""Weight-free local-feature matcher on synthetic frames: spotted coat patches pasted into scenes."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("faiss")

from wildspace.reid.local_features import LocalFeatureConfig, LocalFeatures, extract, match_score, score_matrix  # noqa: E402

H, W = 360, 480
CONFIG = LocalFeatureConfig(search_depth=300)


def _field(seed: int, shape, blur: float) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    field = cv2.GaussianBlur(noise, (0, 0), blur)
    return (field - field.mean()) / (field.std() + 1e-6)


def coat(seed: int, side: int = 150) -> np.ndarray:
    """A spotted patch (dark rosettes on a light fur), grey uint8."""
    spots = _field(seed, (side, side), 4.0) > 0.9
    fur = 190 + 15 * _field(seed + 1000, (side, side), 2.0)
    return np.clip(np.where(spots, 50, fur), 0, 255).astype(np.uint8)


def scene(seed: int) -> np.ndarray:
    """A textured background (rocks) of H x W, grey uint8."""
    rock = 120 + 35 * _field(seed, (H, W), 3.0) + 15 * _field(seed + 1, (H, W), 1.0)
    return np.clip(rock, 0, 255).astype(np.uint8)


def frame(background: np.ndarray, patch: np.ndarray | None, at=(60, 80), angle=0.0) -> np.ndarray:
    """RGB frame: ``patch`` rotated by ``angle`` degrees and pasted at ``at`` (x, y)."""
    img = background.copy()
    if patch is not None:
        s = patch.shape[0]
        rot = cv2.getRotationMatrix2D((s / 2, s / 2), angle, 1.0)
        warped = cv2.warpAffine(patch, rot, (s, s), borderValue=0)
        inside = cv2.warpAffine(np.full_like(patch, 255), rot, (s, s)) > 0
        x, y = at
        view = img[y:y + s, x:x + s]
        view[inside] = warped[inside]
    return np.repeat(img[:, :, None], 3, axis=2)


def feats(rgb):
    return extract(rgb, CONFIG)


def test_same_coat_elsewhere_scores_above_a_different_coat():
    query = feats(frame(scene(1), coat(10), at=(40, 60), angle=0))
    own = feats(frame(scene(2), coat(10), at=(280, 150), angle=25))
    other = feats(frame(scene(3), coat(20), at=(280, 150), angle=25))
    s = score_matrix([query], [own, other], CONFIG)
    assert s.shape == (1, 2) and s.dtype == np.float32
    assert s[0, 0] > 0
    assert s[0, 0] > 3 * s[0, 1]


def test_static_background_of_one_camera_is_not_evidence():
    camera = scene(5)
    query = feats(frame(camera, coat(10), at=(40, 60)))
    same_camera_other_animal = feats(frame(camera, coat(20), at=(300, 180)))
    other_camera_same_animal = feats(frame(scene(6), coat(10), at=(250, 120), angle=-20))
    s = score_matrix([query], [same_camera_other_animal, other_camera_same_animal], CONFIG)
    # Without background removal the shared rocks would give hundreds of perfect matches.
    assert s[0, 1] > 0
    assert s[0, 0] < 0.2 * s[0, 1]


def test_background_seen_in_a_third_frame_is_removed_everywhere():
    camera = scene(7)
    query = feats(frame(camera, coat(10), at=(40, 60)))
    empty_frame = feats(frame(camera, None))  # the camera again, no animal
    other_animal = feats(frame(camera, coat(20), at=(300, 180)))
    same_animal = feats(frame(scene(8), coat(10), at=(250, 120), angle=-20))
    s = score_matrix([query], [empty_frame, other_animal, same_animal], CONFIG)
    assert s[0, 2] > 0
    assert s[0, 0] < 0.05 * s[0, 2] and s[0, 1] < 0.05 * s[0, 2]


def test_excluded_frames_are_zero_and_take_no_part():
    query = feats(frame(scene(1), coat(10), at=(40, 60)))
    gallery = [feats(frame(scene(2), coat(10), at=(250, 100), angle=15)),
               feats(frame(scene(3), coat(10), at=(260, 120), angle=-10)),  # excluded
               feats(frame(scene(4), coat(20), at=(200, 100)))]
    exclude = np.array([[False, True, False]])
    with_exclusion = score_matrix([query], gallery, CONFIG, exclude=exclude)
    assert with_exclusion[0, 1] == 0
    without_frame = score_matrix([query], [gallery[0], gallery[2]], CONFIG)
    np.testing.assert_allclose(with_exclusion[0, [0, 2]], without_frame[0], rtol=1e-5)
    # The excluded frame would have competed with frame 0 for the LNBNN votes.
    assert score_matrix([query], gallery, CONFIG)[0, 0] != pytest.approx(with_exclusion[0, 0])


def test_leave_one_out_on_a_gallery_scored_against_itself():
    a1 = feats(frame(scene(1), coat(10), at=(40, 60)))
    a2 = feats(frame(scene(2), coat(10), at=(280, 150), angle=30))
    b1 = feats(frame(scene(3), coat(20), at=(100, 100)))
    b2 = feats(frame(scene(4), coat(20), at=(200, 50), angle=-30))
    gallery = [a1, a2, b1, b2]
    s = score_matrix(gallery, gallery, CONFIG, exclude=np.eye(4, dtype=bool))
    assert np.all(np.diag(s) == 0)
    assert s[0].argmax() == 1 and s[1].argmax() == 0 and s[2].argmax() == 3 and s[3].argmax() == 2


def test_a_copy_of_the_query_in_the_gallery_still_matches():
    img = frame(scene(1), coat(10), at=(40, 60))
    query, copy = feats(img), feats(img)
    other = feats(frame(scene(2), coat(20), at=(200, 100)))
    s = score_matrix([query], [copy, other], CONFIG)
    assert s[0, 0] > s[0, 1]


def test_blank_and_empty_inputs_give_zeros():
    blank = feats(np.zeros((H, W, 3), np.uint8))
    assert blank.xy.shape == (0, 2) and blank.descriptors.shape == (0, 128)
    real = feats(frame(scene(1), coat(10)))
    assert np.all(score_matrix([blank], [real, real], CONFIG) == 0)
    assert np.all(score_matrix([real], [blank], CONFIG) == 0)
    assert score_matrix([], [real], CONFIG).shape == (0, 1)
    assert score_matrix([real], [], CONFIG).shape == (1, 0)
    assert np.all(score_matrix([real], [real], CONFIG, exclude=np.ones((1, 1), bool)) == 0)
    assert match_score(blank, real, CONFIG) == 0


def test_caption_bars_are_masked():
    img = frame(scene(1), coat(10))
    img[:25] = 0
    cv2.putText(img, "2012-07-27 2:24:41 AM M 4/10", (5, 18), 0, 0.6, (255, 255, 255), 1)
    f = feats(img)
    assert len(f.xy) > 0 and f.xy[:, 1].min() >= round(H * CONFIG.caption_mask) - 2


def test_arrays_round_trip():
    f = feats(frame(scene(1), coat(10)))
    back = LocalFeatures.from_arrays(f.to_arrays())
    assert back.size == f.size and back.xy.shape == f.xy.shape
    np.testing.assert_allclose(back.descriptors, f.descriptors, atol=1e-3)
    empty = LocalFeatures.from_arrays(feats(np.zeros((H, W, 3), np.uint8)).to_arrays())
    assert empty.descriptors.shape == (0, 128)
