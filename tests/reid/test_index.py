"""FAISS gallery index: exact and IVF search, enrolment, persistence, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.reid.index import VectorIndex, normalise


def _data(n=2000, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    g = normalise(rng.standard_normal((n, dim)))
    src = rng.choice(n, 50, replace=False)
    q = normalise(g[src] + 0.3 * normalise(rng.standard_normal((50, dim))))
    return g, q, src


def test_exact_search_is_brute_force_cosine():
    g, q, src = _data()
    idx = VectorIndex.build(g * 7.0, kind="auto")  # scale does not matter: cosine
    assert idx.kind == "exact" and len(idx) == 2000 and idx.dim == 32
    scores, ids = idx.search(q, 5)
    ref = np.argsort(-(q @ g.T), axis=1)[:, :5]
    assert (ids == ref).all()
    assert (ids[:, 0] == src).all()
    assert np.allclose(scores[:, 0], np.sum(q * g[src], axis=1), atol=1e-5)
    s1, i1 = idx.search(q[:1], 3)  # the single-query path gives the same answer
    assert (i1[0] == ids[0, :3]).all()


def test_ivf_finds_resightings_and_accepts_enrolment():
    g, q, src = _data()
    idx = VectorIndex.build(g, kind="ivf")
    assert idx.kind == "ivf"
    _, ids = idx.search(q, 1)
    assert np.mean(ids[:, 0] == src) >= 0.98
    newcomer = normalise(np.ones((1, 32)))
    idx.add(newcomer)
    assert len(idx) == 2001
    assert idx.search(newcomer, 1)[1][0, 0] == 2000


def test_save_load_round_trip(tmp_path):
    g, q, _ = _data(300)
    for kind in ("exact", "ivf"):
        idx = VectorIndex.build(g, kind=kind)
        idx.save(tmp_path / f"{kind}.faiss")
        back = VectorIndex.load(tmp_path / f"{kind}.faiss")
        assert back.kind == kind
        assert (back.search(q, 3)[1] == idx.search(q, 3)[1]).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index-")]


def test_errors_name_the_problem():
    g, _, _ = _data(100)
    idx = VectorIndex.build(g)
    with pytest.raises(ValueError, match="33 dimensions, the index 32"):
        idx.search(np.zeros((1, 33)), 1)
    with pytest.raises(ValueError, match="exact, ivf"):
        VectorIndex.build(g, kind="hnsw")
    with pytest.raises(ValueError, match="2-D"):
        normalise(np.zeros(5))
