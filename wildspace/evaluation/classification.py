"""Classification metrics (scikit-learn) as a JSON-ready dict.

- ``accuracy`` (micro): fraction of images classified right.
- ``macro_accuracy``: mean of the per-class recalls (balanced accuracy): every class counts
  the same, however many images it has.
- ``per_class``: precision, recall, F1 and support for each label.
- ``weighted``: precision/recall/F1 averaged over classes, weighted by support; ``macro``:
  the same unweighted.
- ``confusion``: rows = true label, columns = predicted label, in ``labels`` order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from wildspace.errors import UsageError


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Metrics for predicted class indexes against the true ones (indexes into ``labels``).

    Raises:
        ValueError: different lengths, no samples, or an index outside ``labels``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    true, pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    if true.shape != pred.shape or true.ndim != 1:
        raise UsageError(f"y_true and y_pred must be 1-d and the same length, got {true.shape} and {pred.shape}")
    if len(true) == 0:
        raise UsageError("no samples to evaluate")
    k = len(labels)
    for name, y in (("y_true", true), ("y_pred", pred)):
        if y.min() < 0 or y.max() >= k:
            raise UsageError(f"{name} has class indexes outside 0..{k - 1} ({k} labels)")
    idx = list(range(k))
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=idx, zero_division=0)
    present = s > 0
    out = {
        "samples": int(len(true)),
        "accuracy": float(accuracy_score(true, pred)),
        "macro_accuracy": float(np.mean(r[present])) if present.any() else 0.0,
        "per_class": {labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i in idx},
        "confusion": confusion_matrix(true, pred, labels=idx).tolist(),
        "labels": list(labels),
    }
    for avg in ("weighted", "macro"):
        pa, ra, fa, _ = precision_recall_fscore_support(true, pred, labels=idx, average=avg,
                                                        zero_division=0)
        out[avg] = {"precision": float(pa), "recall": float(ra), "f1": float(fa)}
    out["chance_accuracy"] = float(np.max(np.bincount(true, minlength=k)) / len(true))
    return out


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path,
                   title: str = "Confusion matrix") -> Path:
    """Save the confusion matrix as a PNG (counts in the cells; rows true, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(2.5 + 0.6 * n, 2 + 0.5 * n), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if top and cm[i, j] > top / 2 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def classification_markdown(m: dict, plot_name: str | None = None) -> str:
    """A readable Markdown section for :func:`classification_metrics` output."""
    lines = [f"- images: {m['samples']}",
             f"- accuracy (micro): **{m['accuracy']:.3f}** (always guessing the largest class: "
             f"{m['chance_accuracy']:.3f})",
             f"- macro accuracy (mean per-class recall): **{m['macro_accuracy']:.3f}**",
             f"- weighted precision / recall / F1: {m['weighted']['precision']:.3f} / "
             f"{m['weighted']['recall']:.3f} / {m['weighted']['f1']:.3f}",
             f"- macro F1: {m['macro']['f1']:.3f}", "",
             "| class | precision | recall | F1 | images |", "|---|---|---|---|---|"]
    for label, c in m["per_class"].items():
        lines.append(f"| {label} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    lines += ["", "Confusion matrix (rows: true, columns: predicted):", "",
              "| | " + " | ".join(m["labels"]) + " |", "|---" * (len(m["labels"]) + 1) + "|"]
    for label, row in zip(m["labels"], m["confusion"]):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    if plot_name:
        lines += ["", f"![confusion matrix]({plot_name})"]
    return "\n".join(lines)
