"""Evaluation runs for the CLI and the app: load the model and the labelled set, compute the
metrics, write ``report.json`` + ``report.md`` with plots."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from wildspace.errors import UsageError
from wildspace.evaluation.report import write_report


def evaluate_classifier(model: str, data: str | Path, out_dir: str | Path, images_dir=None,
                        label_map: dict[str, str] | None = None, settings=None, batch_size: int = 16):
    """Classify every labelled image with the installed classifier ``model`` (the same
    preprocessing as the app) and report. Images whose class the model does not know are an
    error naming them; unreadable images are skipped and listed.

    Returns:
        ``(metrics, report paths)``.
    """
    from wildspace.evaluation.classification import classification_markdown, classification_metrics, plot_confusion
    from wildspace.media.images import ImageReadError, load_image
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings
    from wildspace.train.data import load_samples, rename_labels

    settings = settings or load_settings()
    clf = ClassifierService(settings).load(model)
    samples = load_samples(data, images_dir)
    if label_map:
        samples = rename_labels(samples, label_map)
    labels = list(clf.info.labels)
    unknown = sorted({s.label for s in samples} - set(labels))
    if unknown:
        raise UsageError(f"classes {', '.join(unknown)} of the data are not labels of '{model}' "
                         f"({', '.join(labels)}); rename them with --label-map OLD=NEW")
    y_true, y_pred, skipped = [], [], []
    for start in range(0, len(samples), batch_size):
        batch, truth = [], []
        for s in samples[start:start + batch_size]:
            try:
                batch.append(load_image(s.path, settings.max_pixels))
                truth.append(labels.index(s.label))
            except ImageReadError as exc:
                skipped.append((s.path, str(exc)))
        if batch:
            y_pred += clf.predict(batch, batch_size).argmax(1).tolist()
            y_true += truth
    m = classification_metrics(y_true, y_pred, labels)
    out = Path(out_dir)
    png = plot_confusion(m["confusion"], labels, out / "confusion.png", f"{model} on {Path(data).name}")
    paths = write_report(out, f"Evaluation of {model}", [
        ("Data", f"`{data}`: {len(samples)} labelled images, {len(skipped)} unreadable (skipped)"),
        ("Metrics", classification_markdown(m, png.name))],
        {"task": "classify", "model": model, "data": str(data), "metrics": m, "skipped": skipped})
    return m, paths


def evaluate_detection(results: str | Path, ground_truth: str | Path, out_dir: str | Path,
                       threshold: float = 0.2, iou: float = 0.5, classes: str = "animal",
                       names: Sequence[str] | None = None):
    """Precision/recall of a MegaDetector JSON against COCO or YOLO ground truth; returns
    ``(metrics, report paths)``."""
    from wildspace.evaluation.detection import detection_metrics, read_ground_truth, read_predictions
    from wildspace.formats.megadetector import read_results

    doc = read_results(results)
    keys, gt = read_ground_truth(ground_truth, names)
    m = detection_metrics(read_predictions(doc), gt, keys, threshold, iou, classes)
    out = Path(out_dir)
    png = _plot_pr(m, out / "precision_recall.png")
    detector = doc.get("info", {}).get("detector", "unknown")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    il = m["image_level"]
    body = "\n".join([
        f"- detector: `{detector}` (from the results file)",
        f"- images with ground truth: {m['images']} ({m['images_with_predictions']} in the results); "
        f"ground-truth boxes in play: {m['ground_truth_boxes']}",
        f"- class matching: `{classes}`; IoU >= {iou}; confidence >= {threshold}",
        f"- **precision {fmt(m['precision'])}, recall {fmt(m['recall'])}**, F1 {fmt(m['f1'])} "
        f"({m['tp']} true positives, {m['fp']} false positives, {m['fn']} missed boxes)",
        f"- AP@{iou} over all confidences: {fmt(m['ap'])}",
        f"- image level: {il['found']} of {il['images_with_boxes']} images with a ground-truth box have "
        f"a detection (recall {fmt(il['recall'])}); {il['false_alarm_images']} images without one have a detection",
        "", f"![precision/recall]({png.name})"])
    paths = write_report(out, "Detection evaluation", [("Results", body)],
                         {"task": "detect", "results": str(results), "ground_truth": str(ground_truth),
                          "detector": detector, "metrics": m})
    return m, paths


def _plot_pr(m: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=100)
    c = m["curve"]
    if c["recall"]:
        ax.plot(c["recall"], c["precision"], drawstyle="steps-post")
    if m["precision"] is not None and m["recall"] is not None:
        ax.plot([m["recall"]], [m["precision"]], "o", label=f"conf >= {m['threshold']}")
        ax.legend(loc="lower left")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"IoU >= {m['iou']}, classes: {m['classes']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
