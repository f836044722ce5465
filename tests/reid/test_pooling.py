"""Per-identity pooling and encounter grouping on hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.reid.events import event_labels, parse_time
from wildspace.reid.pooling import pool_events, pool_keypoints, pooled_scores

INF = np.inf


def test_event_pooling_prefers_evidence_from_two_encounters_over_one_burst():
    # gallery: A has one burst of three near-duplicates (event e1); B two encounters (e2, e3)
    ids = np.array(["A", "A", "A", "B", "B"])
    events = np.array(["e1", "e1", "e1", "e2", "e3"])
    sim = np.array([[9.0, 8.5, 8.8, 6.0, 5.0]])
    labels, best = pooled_scores("max", sim, ids)
    assert labels.tolist() == ["A", "B"] and best[0].tolist() == [9.0, 6.0]
    labels, pooled = pool_events(sim, ids, events, top=2)
    # A: one encounter (9.0; the burst counts once), B: 6 + 5
    assert pooled[0].tolist() == [9.0, 11.0]


def test_event_pooling_ignores_pairs_not_compared():
    ids = np.array(["A", "A", "B"])
    events = np.array(["e1", "e2", "e3"])
    sim = np.array([[-INF, 3.0, 2.0], [-INF, -INF, 2.0]])
    _, pooled = pool_events(sim, ids, events, top=2)
    assert pooled[0].tolist() == [3.0, 2.0]
    assert pooled[1, 0] == -INF and pooled[1, 1] == 2.0  # nothing of A compared: -inf


def test_keypoint_pooling_counts_each_query_keypoint_once_per_identity():
    ids = np.array(["A", "A", "B"])
    # query keypoint 0 matched in both A frames (a burst): counts once, with its best weight;
    # keypoints 1 and 2 matched in B's one frame
    votes = [(np.array([0, 0, 1, 2]), np.array([0, 1, 2, 2]), np.array([5.0, 4.0, 3.0, 3.0]))]
    labels, scores = pool_keypoints(votes, ids)
    assert labels.tolist() == ["A", "B"]
    assert scores[0].tolist() == [5.0, 6.0]
    compared = np.array([[False, False, True]])
    _, masked = pool_keypoints(votes, ids, compared)
    assert masked[0, 0] == -INF and masked[0, 1] == 6.0


def test_pooled_scores_checks_its_mode():
    with pytest.raises(ValueError, match="pooling"):
        pooled_scores("mean", np.zeros((1, 1)), ["A"])
    with pytest.raises(ValueError, match="votes"):
        pooled_scores("keypoints", np.zeros((1, 1)), ["A"])


def test_encounters_are_one_station_within_the_gap():
    stations = ["04", "04", "04", "05", "05", "", "05"]
    dates = ["2012-7-5 12:00:00", "2012-07-05 12:10:00", "2012-07-05 13:30:00",
             "2012-07-05 12:00:00", "2012-07-06", "2012-07-05 12:00:00", "2012-07-06"]
    labels = event_labels(stations, dates, gap_minutes=30)
    assert labels[0] == labels[1] != labels[2]  # 10 min apart: one; 80 min later: another
    assert labels[3] not in labels[:3]  # another station at the same time
    assert labels[4] == labels[6]  # no time of day: one encounter per station and date
    assert labels[5] not in labels[:5] + labels[6:]  # no station: its own encounter
    assert len(set(event_labels(stations, dates, gap_minutes=120))) == 4


def test_times_in_separate_columns_and_odd_dates():
    assert parse_time("2012:07:05", "2-21-34")[1].isoformat() == "2012-07-05T02:21:34"
    assert parse_time("2012-7-5T23:48:40")[1].hour == 23
    assert parse_time("not a date") == (None, None)
    assert parse_time("2012-13-40") == (None, None)
    labels = event_labels(["s", "s"], ["2012-07-05", "2012-07-05"], 30, times=["12:00", "12:20"])
    assert labels[0] == labels[1]
    with pytest.raises(ValueError):
        event_labels(["s"], ["2012-07-05"], -1)
