"""Re-ID metrics on hand-made similarity matrices with exact expected values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wildspace.reid.metrics import average_precision, evaluate, rank_identities

# 4 queries x 5 gallery images; gallery identities a a b c c
GALLERY = ["a", "a", "b", "c", "c"]
SIM = np.array([
    [0.9, 0.1, 0.5, 0.2, 0.3],   # q0 (a): a best -> rank 1
    [0.2, 0.3, 0.8, 0.6, 0.1],   # q1 (c): b 0.8 > c 0.6 -> rank 2
    [0.1, 0.1, 0.2, 0.3, 0.1],   # q2 (b): c 0.3 > b 0.2, a 0.1 -> rank 2
    [0.4, 0.4, 0.4, 0.1, 0.1],   # q3 (d): unknown identity
])
QUERIES = ["a", "c", "b", "d"]


def test_ranking_and_topk():
    r = rank_identities(SIM, QUERIES, GALLERY)
    assert r.identities[0].tolist() == ["a", "b", "c"]
    assert r.identities[1].tolist() == ["b", "c", "a"]
    assert r.scores[1].tolist() == pytest.approx([0.8, 0.6, 0.3])
    assert r.true_rank.tolist() == [1, 2, 2, 0]
    m = evaluate(SIM, QUERIES, GALLERY)
    assert m["known_queries"] == 3 and m["unknown_queries"] == 1
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top5"] == pytest.approx(1.0)
    assert m["map_at_k"]["1"] == pytest.approx(1 / 3)
    assert m["map_at_k"]["3"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_map_over_images():
    # q0: ranking 0.9(a) 0.5(b) 0.3(c) 0.2(c) 0.1(a): AP = (1/1 + 2/5) / 2
    # q1: 0.8(b) 0.6(c) 0.3(a) 0.2(a) 0.1(c): AP = (1/2 + 2/5) / 2
    # q2: 0.3(c) 0.2(b) ...: AP = 1/2
    m = evaluate(SIM, QUERIES, GALLERY)
    expected = np.mean([(1 + 2 / 5) / 2, (1 / 2 + 2 / 5) / 2, 1 / 2])
    assert m["mAP"] == pytest.approx(expected)


def test_ties_count_against_the_query():
    sim = np.zeros((1, 3))
    r = rank_identities(sim, ["a"], ["a", "b", "c"])
    assert r.true_rank.tolist() == [3]
    assert evaluate(sim, ["a"], ["a", "b", "c"])["top1"] == 0.0
    assert average_precision(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)


def test_leave_one_out_exclusion_makes_singletons_unknown():
    ids = ["a", "a", "b"]
    sim = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.2], [0.1, 0.2, 1.0]])
    m = evaluate(sim, ids, ids, exclude=np.eye(3, dtype=bool))
    assert m["known_queries"] == 2 and m["unknown_queries"] == 1
    assert m["top1"] == 1.0


def test_open_set_balanced_accuracies():
    # decisions: q0 known (right), q1 known (wrong top id), q2 new (wrong: it is known), q3 new (right)
    m = evaluate(SIM, QUERIES, GALLERY, known_decision=np.array([True, True, False, False]))
    assert m["baks"] == pytest.approx(1 / 3)   # a:1, c:0, b:0
    assert m["baus"] == pytest.approx(1.0)     # d:1
    m2 = evaluate(SIM, QUERIES, GALLERY, known_decision=np.array([True, True, True, True]))
    assert m2["baus"] == 0.0


def test_balanced_accuracy_averages_per_identity():
    gallery = ["a", "b"]
    sim = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.2]])
    m = evaluate(sim, ["a", "a", "b", "b"], gallery, known_decision=np.ones(4, bool))
    # a: 2/2 right; b: q2 wrong, q3 right -> 1/2; balanced = 0.75 (micro would be 0.75 too)
    assert m["baks"] == pytest.approx(0.75)
    m = evaluate(sim[:3], ["a", "a", "b"], gallery, known_decision=np.ones(3, bool))
    assert m["baks"] == pytest.approx(0.5)      # micro accuracy would be 2/3
    assert not math.isnan(m["mAP"])
