"""A whole re-ID training run: images → split by identity → embedder → export (spec + card)
→ held-out metrics and the kNN head → report → install.

With ``loss: ntxent`` (SimCLR) and no identities table, every image of the folder trains the
embedder and there is no split, kNN head or evaluation (nothing to measure against)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from wildspace.errors import UsageError
from wildspace.train.reid import ReidConfig, fit_knn_head, init_for, save_knn_head, train_embedder


def _loss_words(config: ReidConfig) -> str:
    if config.loss == "ntxent":
        return (f"SimCLR: NT-Xent on two augmented views per crop (temperature {config.temperature}, "
                f"{config.batch_size} crops per batch, projection head of {config.projection_dim} dims dropped "
                "at export; labels not used for training)")
    return f"a {config.loss} loss on {config.metric} distances"


def run_reid(config: ReidConfig, settings, license: str = "unknown", install: bool = True,
             replace: bool = False, on_epoch: Callable[[dict], None] = lambda log: None,
             tick: Callable[[], bool] = lambda: False) -> dict:
    """Train, export and evaluate; returns a summary (``test`` re-ID metrics, ``knn`` head;
    both ``None`` for an unlabeled SimCLR run)."""
    import torch

    from wildspace.evaluation.report import write_report
    from wildspace.reid.embedders import build_embedder
    from wildspace.train.data import Sample, split_samples
    from wildspace.train.export import install_model, write_model_folder
    from wildspace.train.reid_data import load_folder_images, load_identity_images, open_set_metrics, reid_markdown

    config.check()
    labelled = bool(config.identities)
    if not labelled and config.loss != "ntxent":
        raise UsageError(f"loss '{config.loss}' needs identities (a CSV); only ntxent trains on unlabeled images")
    if labelled:
        images, ids, skipped = load_identity_images(Path(config.images), Path(config.identities),
                                                    config.input_size, settings.max_pixels)
        split = split_samples([Sample(str(i), x) for i, x in enumerate(ids)], "random", config.test_fraction, 0.0,
                              config.seed)
        tr, te = split.train, split.test
    else:
        images, _, skipped = load_folder_images(Path(config.images), config.input_size, settings.max_pixels)
        ids, tr, te = None, list(range(len(images))), []
    init = init_for(config, settings)
    net = train_embedder(config, [images[i] for i in tr], [ids[i] for i in tr] if labelled else None, tick,
                         on_epoch, init=init)
    if net is None:
        return {"state": "stopped"}
    mean, std = init.mean or (0.485, 0.456, 0.406), init.std or (0.229, 0.224, 0.225)
    fields = {"name": config.name, "task": "embed", "family": "timm", "version": "trained",
              "input_size": config.input_size, "labels": [], "license": license, "arch": config.backbone,
              "mean": list(mean), "std": list(std),
              "training": {"loss": config.loss, "metric": config.metric, "epochs": config.epochs,
                           "initial_weights": {"name": init.name, "source": init.source, "sha256": init.sha256}
                           if init.kind != "random" else {"kind": "random"}}}
    out = Path(config.out_dir)
    data_line = (f"- {len(set(ids))} identities; {len(tr)} training and {len(te)} held-out images; "
                 if labelled else f"- {len(images)} unlabeled images (no identities); ") + f"{len(skipped)} unreadable"
    card = [f"# {config.name}", "", f"A re-identification embedder (timm `{config.backbone}`, pooled features, "
            f"{config.input_size} px) trained with wildspace using {_loss_words(config)}.", "",
            "## Data", "", f"- images `{config.images}`" + (f", identities `{config.identities}`" if labelled else ""),
            data_line, "", "## Training", "", f"- initial weights: {init.describe()}",
            f"- AdamW lr {config.lr}" + (f", backbone lr {config.lr * config.backbone_lr_scale:g}, "
                                         f"{config.freeze_epochs} frozen warm-up epoch(s)"
                                         if init.kind != "random" else ""),
            f"- normalisation mean {list(mean)}, std {list(std)}", ""]
    exported = write_model_folder(out / "model", net, fields, "\n".join(card))
    ck = out / "reid-checkpoint.pt"
    history = json.loads(torch.load(ck, map_location="cpu", weights_only=True)["history"]) if ck.is_file() else []
    history_md = "| epoch | loss |\n|---|---|\n" + "\n".join(f"| {h['epoch']} | {h['loss']:.4f} |" for h in history)
    readme = exported.folder / "README.md"
    if not labelled:
        readme.write_text(readme.read_text() + "\n## Training loss\n\n" + history_md + "\n\n## Licence\n\n"
                          + license + "\n", encoding="utf-8")
        report = write_report(out / "report", f"Re-ID training report: {config.name}",
                              [("Initial weights", init.describe()), ("Training loss", history_md)],
                              {"config": asdict(config), "history": history, "skipped": skipped})
        spec = install_model(exported, settings, replace=replace) if install else exported.spec
        return {"state": "done", "model": spec.name, "test": None, "knn": None, "images": len(images),
                "history": history, "model_folder": str(exported.folder), "report": str(report["markdown"])}
    embedder = build_embedder(exported.spec, exported.weights)  # the production loading path
    e = embedder.embed(images)
    g, q = e[tr], e[te]
    gi, qi = [ids[i] for i in tr], [ids[i] for i in te]
    test = open_set_metrics(q @ g.T, qi, gi) if te else None
    head = fit_knn_head(g, gi, config.seed)
    save_knn_head(head, out / "model")
    from wildspace.train.reid import KnnHead

    knn = KnnHead(out / "model")
    knn_acc = float(np.mean(knn.predict(q) == np.asarray(qi))) if te else None
    knn_info = {"params": knn.params, "cv_accuracy": knn.cv_accuracy, "test_accuracy": knn_acc}
    metrics_md = reid_markdown(test) if test else "No held-out images."
    knn_md = (f"PCA + kNN, grid search with 5-fold KFold: best {knn.params}, CV accuracy "
              f"{knn.cv_accuracy:.3f}; accuracy on held-out images "
              f"{'n/a' if knn_acc is None else f'{knn_acc:.3f}'}. Saved as `knn_head.safetensors` + `knn_head.json`.")
    readme.write_text(readme.read_text() + "\n## Held-out metrics\n\nQueries: held-out images; gallery: "
                      "training images.\n\n" + metrics_md + "\n\n## kNN head\n\n" + knn_md + "\n\n## Licence\n\n"
                      + license + "\n", encoding="utf-8")
    report = write_report(out / "report", f"Re-ID training report: {config.name}",
                          [("Initial weights", init.describe()), ("Held-out metrics", metrics_md),
                           ("kNN head", knn_md), ("Training loss", history_md)],
                          {"config": asdict(config), "test": test, "knn": knn_info, "skipped": skipped,
                           "history": history})
    spec = install_model(exported, settings, replace=replace) if install else exported.spec
    return {"state": "done", "model": spec.name, "test": test, "knn": knn_info, "history": history,
            "model_folder": str(exported.folder), "report": str(report["markdown"])}
