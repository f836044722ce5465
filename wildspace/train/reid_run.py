"""A whole re-ID training run: images → split by identity → embedder → export (spec + card)
→ held-out metrics and the kNN head → report → install."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from wildspace.train.reid import ReidConfig, fit_knn_head, save_knn_head, train_embedder


def run_reid(config: ReidConfig, settings, license: str = "unknown", install: bool = True,
             replace: bool = False, on_epoch: Callable[[dict], None] = lambda log: None,
             tick: Callable[[], bool] = lambda: False) -> dict:
    """Train, export and evaluate; returns a summary (``test`` re-ID metrics, ``knn`` head)."""
    from wildspace.evaluation.report import write_report
    from wildspace.reid.embedders import build_embedder
    from wildspace.train.data import Sample, split_samples
    from wildspace.train.export import install_model, write_model_folder
    from wildspace.train.reid_cli import load_identity_images, open_set_metrics, reid_markdown

    config.check()
    images, ids, skipped = load_identity_images(Path(config.images), Path(config.identities),
                                                config.input_size, settings.max_pixels)
    split = split_samples([Sample(str(i), x) for i, x in enumerate(ids)], "random", config.test_fraction, 0.0,
                          config.seed)
    tr, te = split.train, split.test
    net = train_embedder(config, [images[i] for i in tr], [ids[i] for i in tr], tick, on_epoch)
    if net is None:
        return {"state": "stopped"}
    fields = {"name": config.name, "task": "embed", "family": "timm", "version": "trained",
              "input_size": config.input_size, "labels": [], "license": license, "arch": config.backbone,
              "training": {"loss": config.loss, "metric": config.metric, "epochs": config.epochs}}
    out = Path(config.out_dir)
    card = [f"# {config.name}", "", f"A re-identification embedder (timm `{config.backbone}`, pooled features, "
            f"{config.input_size} px) trained with wildspace using a {config.loss} loss on {config.metric} "
            f"distances.", "", "## Data", "", f"- images `{config.images}`, identities `{config.identities}`",
            f"- {len(set(ids))} identities; {len(tr)} training and {len(te)} held-out images; "
            f"{len(skipped)} unreadable", ""]
    exported = write_model_folder(out / "model", net, fields, "\n".join(card))
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
    readme = exported.folder / "README.md"
    readme.write_text(readme.read_text() + "\n## Held-out metrics\n\nQueries: held-out images; gallery: "
                      "training images.\n\n" + metrics_md + "\n\n## kNN head\n\n" + knn_md + "\n\n## Licence\n\n"
                      + license + "\n", encoding="utf-8")
    report = write_report(out / "report", f"Re-ID training report: {config.name}",
                          [("Held-out metrics", metrics_md), ("kNN head", knn_md)],
                          {"config": asdict(config), "test": test, "knn": knn_info, "skipped": skipped})
    spec = install_model(exported, settings, replace=replace) if install else exported.spec
    return {"state": "done", "model": spec.name, "test": test, "knn": knn_info,
            "model_folder": str(exported.folder), "report": str(report["markdown"])}
