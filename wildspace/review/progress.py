"""How far a review is, and what it says about the threshold.

Precision and recall at a threshold ``t`` come from the reviewed images: the model's boxes a
reviewer accepted (or redrew) are true objects, the ones rejected are false; a box a reviewer
added is an object the model missed at every threshold. At ``t``: true positives are accepted
boxes with ``conf >= t``, false positives rejected ones with ``conf >= t``, false negatives
accepted boxes below ``t`` plus the added ones.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from wildspace.review.state import ACCEPTED, REJECTED
from wildspace.review.view import OpenSource, label

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def summary(opened: OpenSource) -> dict:
    """Reviewed/total, images per status, accepted boxes per class and per species."""
    states = [s for s in opened.states.states.values() if not s.result.failed]
    labels = opened.source.results.labels
    classes: Counter[str] = Counter()
    species: Counter[str] = Counter()
    for s in states:
        if s.status != "reviewed":
            continue
        for b in s.boxes:
            if b.status == ACCEPTED:
                classes[label(labels, b.class_id)] += 1
                if b.species:
                    species[b.species] += 1
    return {"reviewed": sum(1 for s in states if s.reviewed), "total": len(states),
            "expected": opened.source.total, "statuses": Counter(s.status for s in states),
            "classes": dict(classes.most_common()), "species": dict(species.most_common())}


def precision_recall(opened: OpenSource, thresholds=THRESHOLDS) -> list[dict]:
    """One row per threshold: ``threshold, precision, recall, tp, fp, fn`` (``None`` where a
    ratio has nothing to count)."""
    accepted, rejected, added = [], [], 0
    for s in opened.states.states.values():
        if not s.reviewed:
            continue
        for b in s.boxes:
            if b.added:
                added += b.status == ACCEPTED
            elif b.status == ACCEPTED:
                accepted.append(b.conf)
            elif b.status == REJECTED:
                rejected.append(b.conf)
    rows = []
    for t in thresholds:
        tp = sum(1 for c in accepted if c >= t)
        fp = sum(1 for c in rejected if c >= t)
        fn = len(accepted) - tp + added
        rows.append({"threshold": t, "tp": tp, "fp": fp, "fn": fn,
                     "precision": tp / (tp + fp) if tp + fp else None,
                     "recall": tp / (tp + fn) if tp + fn else None})
    return rows


def markdown(opened: OpenSource) -> str:
    s = summary(opened)
    total = f"{s['total']}" + (f" so far (of {s['expected']})" if opened.source.running and s["expected"] else "")
    parts = [f"**Reviewed {s['reviewed']}/{total}**"]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items()))
    parts.append(f"images: {statuses}")
    if s["classes"]:
        parts.append("accepted boxes: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items()))
    if s["species"]:
        parts.append("species: " + ", ".join(f"{k} {v}" for k, v in s["species"].items()))
    return "  \n".join(parts)


def plot(rows: list[dict], path: Path) -> Path | None:
    """Precision and recall against the threshold, as a small PNG (None when nothing is reviewed)."""
    pts = [r for r in rows if r["precision"] is not None or r["recall"] is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3), dpi=100)
    ax = fig.add_subplot()
    ts = [r["threshold"] for r in rows]
    for key, style in (("precision", "-o"), ("recall", "-s")):
        ax.plot(ts, [r[key] if r[key] is not None else float("nan") for r in rows], style, label=key, markersize=3)
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("From your review")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
