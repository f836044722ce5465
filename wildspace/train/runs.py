"""A whole classifier training run, as the CLI and the worker job do it: (optional detector
crops) → train/resume → export weights + spec + card → evaluation report → install."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from wildspace.train.classifier import Hooks, TrainConfig, TrainOutcome, train_classifier


def classifier_card(config: TrainConfig, o: TrainOutcome, license: str) -> str:
    """The model card body: what it is, the data, how it was trained, the held-out metrics."""
    from wildspace.evaluation.classification import classification_markdown

    lines = [f"# {config.name}", "",
             f"A {config.kind} classifier ({o.family} `{config.arch}`, {config.input_size} px input, "
             f"softmax over {len(o.labels)} classes) trained with wildspace.", "",
             "## Data", "",
             f"- source: `{config.data}`" + (f" (labels renamed: {config.label_map})" if config.label_map else ""),
             f"- classes: {', '.join(o.labels)}",
             f"- split ({config.split}): {o.counts.get('train')} train, {o.counts.get('val')} validation, "
             f"{o.counts.get('test')} held-out test images"
             + (f"; {len(o.failures)} unreadable files skipped" if o.failures else ""), "",
             "## Training", "",
             f"- loss `{config.loss}`, AdamW lr {config.lr}, weight decay {config.weight_decay}, cosine "
             f"schedule, batch {config.batch_size}, class balance `{config.balance}`",
             "- augmentation: random resized crops, horizontal flips, colour jitter",
             f"- {o.epochs_done} of {config.epochs} epochs (early stopping patience {config.patience}); "
             f"best validation epoch {o.best_epoch}",
             f"- initial weights: {o.init.describe() if o.init else 'random (no pretrained backbone)'}",
             *([f"- fine-tuning: backbone learning rate {config.lr * config.backbone_lr_scale:g} "
                f"({config.backbone_lr_scale:g} x the head's), {config.freeze_epochs} frozen warm-up epoch(s)"]
               if o.init is not None and o.init.kind != "random" else []),
             f"- normalisation mean {list(o.mean)}, std {list(o.std)}; precision {o.precision}",
             "", "## Held-out test metrics", ""]
    lines.append(classification_markdown(o.test) if o.test else "No held-out images (test fraction 0).")
    lines += ["", "## Licence", "", f"{license}. Check the licence of your training images before sharing "
              "the model.", "", "## Use", "",
              f"`python -m wildspace models list` shows `{config.name}`; "
              + ("the app's *Products* tab offers it." if config.kind == "products"
                 else f"`python -m wildspace detect --classifier {config.name} …` uses it on animal boxes.")]
    return "\n".join(lines)


def _init_record(init) -> dict:
    if init is None or init.kind == "random":
        return {"kind": "random"}
    return {"kind": init.kind, "name": init.name, "source": init.source, "sha256": init.sha256}


def finish_classifier(config: TrainConfig, o: TrainOutcome, settings, license: str = "unknown",
                      install: bool = True, replace: bool = False):
    """Export, report and (optionally) install a finished run; returns the export and report paths."""
    from wildspace.evaluation.classification import classification_markdown, plot_confusion
    from wildspace.evaluation.report import write_report
    from wildspace.train.export import install_model, write_model_folder

    out = Path(config.out_dir)
    fields = {"name": config.name, "task": "classify", "family": o.family, "version": "trained",
              "input_size": config.input_size, "labels": list(o.labels),
              "thresholds": {"typical": 0.5, "conservative": 0.5}, "license": license,
              "arch": config.arch, "kind": config.kind, "mean": list(o.mean), "std": list(o.std),
              "training": {"loss": config.loss, "split": config.split, "epochs": o.epochs_done,
                           "best_epoch": o.best_epoch, "initial_weights": _init_record(o.init)}}
    if config.kind == "products":
        from wildspace.classify.products import check_product_labels

        check_product_labels(o.labels, f"products model '{config.name}' (rename classes with --label-map)")
    exported = write_model_folder(out / "model", o.net, fields, classifier_card(config, o, license), o.test)
    sections = [("Model", f"`{config.name}`: {o.family} `{config.arch}`, classes {', '.join(o.labels)}; initial "
                 f"weights {o.init.describe() if o.init else 'random (no pretrained backbone)'}")]
    if o.test:
        png = plot_confusion(o.test["confusion"], o.labels, out / "report" / "confusion.png",
                             f"{config.name}: held-out test")
        sections.append(("Held-out test", classification_markdown(o.test, png.name)))
    sections.append(("Training history", "| epoch | train loss | val loss | val accuracy |\n|---|---|---|---|\n"
                     + "\n".join(f"| {h['epoch']} | {h['train_loss']:.4f} | {h.get('val_loss', float('nan')):.4f} | "
                                 f"{h.get('val_accuracy', float('nan')):.3f} |" for h in o.history)))
    report = write_report(out / "report", f"Training report: {config.name}", sections,
                          {"config": asdict(config), "test": o.test, "history": o.history,
                           "counts": o.counts, "failures": o.failures})
    spec = install_model(exported, settings, replace=replace) if install else exported.spec
    return exported, spec, report


def run_classifier(config: TrainConfig, settings, hooks: Hooks | None = None, license: str = "unknown",
                   install: bool = True, replace: bool = False) -> dict:
    """Train (resuming when ``config.out_dir`` has a checkpoint), then export and install.

    Returns a summary dict: ``state`` (``done``/``stopped``), ``model``, ``test`` metrics,
    ``epochs_done``, the model folder and report path.
    """
    if config.crop_with and not (Path(config.out_dir) / "split.json").is_file():
        config = _with_crops(config, config.crop_with, settings, hooks)
    o = train_classifier(config, hooks)
    summary = {"state": o.state, "epochs_done": o.epochs_done, "epochs": config.epochs,
               "labels": o.labels, "counts": o.counts}
    if o.state != "done":
        return summary
    exported, spec, report = finish_classifier(config, o, settings, license, install, replace)
    test = {k: v for k, v in (o.test or {}).items() if k != "files"}
    summary.update(model=spec.name, test=test or None, model_folder=str(exported.folder),
                   report=str(report["markdown"]), best_epoch=o.best_epoch)
    return summary


def _with_crops(config: TrainConfig, crop_with: str, settings, hooks: Hooks | None) -> TrainConfig:
    """Crop the training images with ``crop_with`` (``config.crop_with``: a model name or a weights file)."""
    from dataclasses import replace

    from wildspace.services.detectors import DetectorService
    from wildspace.train.crops import crop_training_data

    service = DetectorService(settings)
    src = Path(crop_with)
    detector = (service.load(weights=src) if src.suffix in (".pt", ".pth") and src.is_file()
                else service.load(name=crop_with))
    summary = crop_training_data(config.data, Path(config.out_dir) / "crops", detector,
                                 config.crop_threshold, images_dir=config.images_dir,
                                 max_pixels=settings.max_pixels, tick=hooks.tick if hooks else None)
    return replace(config, data=str(summary.csv), images_dir=None)
