"""FAISS vector search over gallery embeddings (cosine similarity).

Vectors are L2-normalised, so inner product = cosine similarity in [-1, 1]. Small galleries use
an exact flat index; past ``ANN_THRESHOLD`` vectors an inverted-file index (IVF-Flat) answers
in a fraction of the time. The threshold and the IVF settings come from
``bench/bench_gallery_search.py`` on the project machine (2 CPU cores): exact top-5 over 100k
768-d vectors takes about 20 ms per query, so exact search stays under 50 ms up to ~250k
vectors; IVF with sqrt(n) cells and ``nprobe`` = 1/6 of them keeps recall@1 >= 0.99 against
exact search for re-sighting queries (see README, *Benchmarks*).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from wildspace.errors import UsageError

ANN_THRESHOLD = 200_000  # vectors; below this exact search is fast enough (< 10 ms/query)
KINDS = ("auto", "exact", "ivf")


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32 (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise UsageError(f"vectors must be a 2-D array (n, dim), got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12))


def ivf_lists(n: int) -> int:
    """Number of IVF cells for ``n`` vectors (about sqrt(n), at least 1)."""
    return max(1, min(65536, int(np.sqrt(n))))


class VectorIndex:
    """Cosine-similarity search; ``kind`` is ``exact``, ``ivf`` or ``auto`` (by size)."""

    def __init__(self, index, kind: str):
        self._index = index
        self.kind = kind

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", nprobe: int | None = None,
              seed: int = 0) -> "VectorIndex":
        """Index ``vectors`` ``(n, dim)`` (normalised here)."""
        import faiss

        if kind not in KINDS:
            raise UsageError(f"index kind '{kind}' is not one of {', '.join(KINDS)}")
        v = normalise(vectors)
        n, dim = v.shape
        if kind == "auto":
            kind = "ivf" if n >= ANN_THRESHOLD else "exact"
        index: faiss.Index
        if kind == "exact":
            index = faiss.IndexFlatIP(dim)
        else:
            nlist = ivf_lists(n)
            quantizer = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            train = v[np.sort(rng.choice(n, size=min(n, nlist * 64), replace=False))]
            ivf.train(train)
            ivf.nprobe = nprobe or max(16, nlist // 6)
            index = ivf
        index.add(v)
        return cls(index, kind)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (enrolment); ids continue from ``len(self)``."""
        v = normalise(vectors)
        if v.shape[1] != self.dim:
            raise UsageError(f"vectors have {v.shape[1]} dimensions, the index {self.dim}")
        self._index.add(v)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)``, each ``(Q, k)``; missing slots have id -1."""
        q = normalise(queries)
        if q.shape[1] != self.dim:
            raise UsageError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        k = max(1, min(int(k), len(self))) if len(self) else 1
        if len(q) >= 8:
            return self._index.search(q, k)
        import faiss

        # A few queries are memory-bound: OpenMP threads only add contention (measured 41 ms
        # with 2 threads vs 18 ms with 1 at 100k on a busy 2-core machine).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._index.search(q, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old file or the new one, never half)."""
        import faiss

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-")
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        import faiss

        index = faiss.read_index(str(path))
        kind = "ivf" if isinstance(index, faiss.IndexIVF) else "exact"
        return cls(index, kind)
