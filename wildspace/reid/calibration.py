"""Open-set decisions: turn a match score into a probability of "same animal".

The calibration data come from the gallery itself, leave-one-out: each gallery image is
queried against the others; the best score to its own identity is a *positive* example, the
best score to each other identity a *negative* one. A logistic (default) or isotonic fit maps
score → P(same animal). Classes are balanced, so P = 0.5 is where a score is as typical of a
match as of a non-match; a query is called *known* when its top identity reaches
``min_probability`` (default 0.5), else *new*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wildspace.errors import UsageError, WildspaceError

METHODS = ("logistic", "isotonic")


class CalibrationError(WildspaceError, ValueError):
    """Not enough labelled pairs to calibrate (the message says what is missing)."""


@dataclass(frozen=True)
class Calibration:
    """A fitted score → probability map.

    Attributes:
        method: ``logistic`` or ``isotonic``.
        coef, intercept: logistic parameters on the transformed score.
        knots_x, knots_y: isotonic step function (scores, probabilities).
        threshold: the score where the probability first reaches ``min_probability``.
        min_probability: the decision level (default 0.5).
        positives, negatives: how many pairs it was fitted on.
        log_scale: scores were ``log1p``-transformed first (counts from the local matcher).
    """

    method: str
    threshold: float
    min_probability: float
    positives: int
    negatives: int
    coef: float = 0.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()
    log_scale: bool = False

    def probability(self, scores) -> np.ndarray:
        """P(same animal) for each score (array-like → float array)."""
        s = np.asarray(scores, dtype=np.float64)
        s = np.where(np.isfinite(s), s, -1e9)
        x = np.log1p(np.maximum(s, 0.0)) if self.log_scale else s
        if self.method == "logistic":
            return 1.0 / (1.0 + np.exp(-np.clip(self.coef * x + self.intercept, -500, 500)))
        return np.interp(x, np.asarray(self.knots_x), np.asarray(self.knots_y))

    def is_known(self, scores) -> np.ndarray:
        return self.probability(scores) >= self.min_probability

    def to_dict(self) -> dict:
        d = asdict(self)
        d["knots_x"], d["knots_y"] = list(self.knots_x), list(self.knots_y)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        d = dict(d)
        d["knots_x"] = tuple(d.get("knots_x", ()))
        d["knots_y"] = tuple(d.get("knots_y", ()))
        return cls(**d)


def calibration_pairs(sim: np.ndarray, ids, exclude: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out (score, same?) pairs from a gallery-vs-gallery matrix.

    For each image: the best score to its own identity (if another image of it is left) is a
    positive; the best score to every other identity is a negative. The diagonal is always
    excluded.
    """
    sim = np.array(sim, dtype=np.float64)
    n = sim.shape[0]
    mask = np.eye(n, dtype=bool) if exclude is None else (np.asarray(exclude, bool) | np.eye(n, dtype=bool))
    sim[mask] = -np.inf
    ids = np.asarray(ids)
    scores, labels = [], []
    for label in np.unique(ids):
        cols = ids == label
        best = sim[:, cols].max(axis=1)
        for q in range(n):
            if np.isfinite(best[q]):
                scores.append(best[q])
                labels.append(ids[q] == label)
    return np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)


def query_pairs(sim: np.ndarray, query_ids, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
    """(score, same?) pairs from query-vs-gallery scores: for each query, the best score to
    every gallery identity it was compared with (``-inf`` = not compared)."""
    from wildspace.reid.metrics import identity_scores

    labels, best = identity_scores(sim, gallery_ids)
    finite = np.isfinite(best)
    same = labels[None, :] == np.asarray(query_ids)[:, None]
    return best[finite], same[finite]


def fit_calibration(scores, same, method: str = "logistic", min_probability: float = 0.5,
                    log_scale: bool = False) -> Calibration:
    """Fit score → P(same animal) on labelled pairs (classes weighted equally).

    Raises:
        CalibrationError: no positive or no negative pairs.
        ValueError: unknown ``method``.
    """
    if method not in METHODS:
        raise UsageError(f"calibration method '{method}' is not one of {', '.join(METHODS)}")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise CalibrationError(
            f"calibration needs same-animal and different-animal pairs; got {n_pos} and {n_neg} "
            "(a gallery needs at least two identities and one identity with two images)")
    x = np.log1p(np.maximum(s, 0.0)) if log_scale else s
    w = np.where(y, 0.5 / n_pos, 0.5 / n_neg) * len(y)
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=10.0)
        model.fit(x.reshape(-1, 1), y, sample_weight=w)
        a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
        logit = np.log(min_probability / (1 - min_probability))
        tx = (logit - b) / a if a > 0 else float("inf")
        threshold = float(np.expm1(tx)) if log_scale and np.isfinite(tx) else float(tx)
        return Calibration("logistic", threshold, min_probability, n_pos, n_neg,
                           coef=a, intercept=b, log_scale=log_scale)
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(x, y.astype(float), sample_weight=w)
    kx, ky = tuple(float(v) for v in iso.X_thresholds_), tuple(float(v) for v in iso.y_thresholds_)
    tx = _crossing(kx, ky, min_probability)
    threshold = float(np.expm1(tx)) if log_scale and np.isfinite(tx) else float(tx)
    return Calibration("isotonic", threshold, min_probability, n_pos, n_neg,
                       knots_x=kx, knots_y=ky, log_scale=log_scale)


def _crossing(kx, ky, level: float) -> float:
    """The x where the piecewise-linear curve through the knots first reaches ``level``."""
    for i, (x, y) in enumerate(zip(kx, ky)):
        if y >= level:
            if i == 0 or ky[i - 1] == y:
                return float(x)
            x0, y0 = kx[i - 1], ky[i - 1]
            return float(x0 + (level - y0) * (x - x0) / (y - y0))
    return float("inf")


def calibrate_gallery(sim: np.ndarray, ids, method: str = "logistic",
                      exclude: np.ndarray | None = None, log_scale: bool = False,
                      min_probability: float = 0.5) -> Calibration:
    """Leave-one-out calibration on a gallery's own similarity matrix."""
    scores, same = calibration_pairs(sim, ids, exclude)
    return fit_calibration(scores, same, method, min_probability, log_scale)


def brier_score(probability, same) -> float | None:
    """Mean squared error of the probabilities against what was true (lower is better)."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    return float(np.mean((p - y) ** 2)) if len(p) else None


def reliability_curve(probability, same, bins: int = 10) -> list[dict]:
    """Per probability bin: how many answers, their mean probability and how often they were
    right (a calibrated model has ``observed`` close to ``predicted`` in every bin)."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(m.sum()),
                    "predicted": float(p[m].mean()) if m.any() else None,
                    "observed": float(y[m].mean()) if m.any() else None})
    return out


def plot_reliability(curve: list[dict], path, title: str = "Reliability") -> None:
    """A reliability diagram (PNG): observed frequency against predicted probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    pts = [(c["predicted"], c["observed"], c["count"]) for c in curve if c["count"]]
    if pts:
        x, y, n = zip(*pts)
        ax.plot(x, y, marker="o", color="tab:blue", label="measured")
        for xi, yi, ni in pts:
            ax.annotate(str(ni), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(same animal)")
    ax.set_ylabel("observed frequency")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
