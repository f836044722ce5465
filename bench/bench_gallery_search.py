"""Gallery search latency (exact and IVF) at 10k / 100k / 1M random 768-d vectors, and the
IVF index's recall@1 against exact search.

Queries are re-sightings: a gallery vector plus Gaussian noise (cosine about 0.8 to its source),
as a new photo of a known animal is near its gallery photos. Pure random queries (no true
neighbour at all; every gallery vector is about equally far) are reported too: they are the
worst case for any ANN index and are what an unknown animal looks like.

    .venv/bin/python bench/bench_gallery_search.py [--sizes 10000,100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, setup_env

setup_env()

from wildspace.reid.index import ANN_THRESHOLD, VectorIndex, normalise  # noqa: E402

DIM = 768


def vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        out[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    return normalise(out)


def resightings(gallery: np.ndarray, q: int, rng) -> np.ndarray:
    src = gallery[rng.choice(len(gallery), q, replace=False)]
    noise = normalise(rng.standard_normal(src.shape, dtype=np.float32)) * 0.75
    return normalise(src + noise)


def per_query_ms(index: VectorIndex, queries: np.ndarray, k: int = 5) -> float:
    index.search(queries[:5], k)  # warm-up
    t = time.perf_counter()
    for row in queries:  # one query at a time: the app's case
        index.search(row[None], k)
    return (time.perf_counter() - t) * 1000 / len(queries)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {machine()}; dim {DIM}; {args.queries} single queries; auto switches to IVF at "
          f"{ANN_THRESHOLD:,} vectors")
    print(f"{'size':>9} {'exact ms':>9} {'ivf ms':>8} {'speed-up':>8} {'build s':>8} "
          f"{'recall@1 resight':>16} {'recall@1 random':>15}")
    for n in (int(s) for s in args.sizes.split(",")):
        gallery = vectors(n, rng)
        exact = VectorIndex.build(gallery, kind="exact")
        t = time.perf_counter()
        ivf = VectorIndex.build(gallery, kind="ivf")
        build_s = time.perf_counter() - t
        qs = resightings(gallery, args.queries, rng)
        qr = vectors(args.queries, rng)
        ms_exact, ms_ivf = per_query_ms(exact, qs), per_query_ms(ivf, qs)
        recall = []
        for q in (qs, qr):
            _, ie = exact.search(q, 1)
            _, ia = ivf.search(q, 1)
            recall.append(float(np.mean(ie[:, 0] == ia[:, 0])))
        print(f"{n:>9,} {ms_exact:>9.2f} {ms_ivf:>8.2f} {ms_exact / ms_ivf:>7.1f}x {build_s:>8.1f} "
              f"{recall[0]:>16.3f} {recall[1]:>15.3f}", flush=True)
        del exact, ivf, gallery


if __name__ == "__main__":
    main()
