"""Train a re-ID embedder (metric learning) and the seed projects' kNN head.

- **Embedder**: a timm backbone (``num_classes=0``: the pooled features are the embedding,
  the layout :mod:`wildspace.reid.embedders` builds for ``family: timm``), trained on batches
  of ``P`` identities x ``K`` images (identity-aware mining) with a **triplet** loss
  (batch-hard: the farthest positive and the nearest negative of each anchor) or a
  **contrastive** loss (positive pairs pulled together, negatives pushed beyond a margin).
  Distances are **cosine** (on L2-normalised embeddings) or **euclidean**. Or **SimCLR**
  (``ntxent``, :mod:`wildspace.train.simclr`): self-supervised, two augmented views per crop,
  no labels needed; the projection head is dropped at export.
- **Initial weights** as for classifiers (:mod:`wildspace.train.init`): by default the pinned
  ImageNet backbone of the architecture, or a re-ID starting point (``--init
  megadescriptor-b-224``, ``miewid-msv3``, ``dinov2-small-backbone``); the backbone's own mean/std.
- **kNN head** (the SimCLR + kNN seed): PCA then a k-nearest-neighbour classifier, with a
  grid search over ``n_components``/``n_neighbors``/``weights``/``metric`` and 5-fold
  ``KFold`` cross-validation (scikit-learn). It is saved as plain arrays (safetensors) and
  JSON, never as a pickle.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from wildspace.errors import UsageError

REID_LOSSES = ("triplet", "contrastive", "ntxent")
METRICS = ("cosine", "euclidean")


@dataclass
class ReidConfig:
    """Sizes in px; ``identities_per_batch`` x ``images_per_identity`` images per batch."""

    images: str
    identities: str
    out_dir: str
    name: str = "my-embedder"
    backbone: str = "resnet18"
    loss: str = "triplet"
    metric: str = "cosine"
    margin: float = 0.3
    epochs: int = 10
    input_size: int = 128
    identities_per_batch: int = 4
    images_per_identity: int = 4
    lr: float = 3e-4
    test_fraction: float = 0.25
    seed: int = 0
    init: str | None = "auto"  # auto | imagenet | none | a model name | a weights file
    extra: dict = field(default_factory=dict)
    temperature: float = 0.5  # ntxent
    batch_size: int = 32  # ntxent: crops per batch (2x views)
    projection_dim: int = 128  # ntxent
    freeze_epochs: int = 0
    backbone_lr_scale: float = 0.1
    precision: str = "auto"

    def check(self) -> None:
        from wildspace.train.finetune import check_finetune

        if self.loss not in REID_LOSSES:
            raise UsageError(f"loss '{self.loss}' is not one of {', '.join(REID_LOSSES)}")
        if self.metric not in METRICS:
            raise UsageError(f"metric '{self.metric}' is not one of {', '.join(METRICS)}")
        for k in ("epochs", "input_size", "identities_per_batch", "images_per_identity", "projection_dim"):
            if int(getattr(self, k)) < 1:
                raise UsageError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.loss == "ntxent":
            if int(self.batch_size) < 2:
                raise UsageError(f"batch_size must be >= 2 for ntxent (the other crops are the negatives), "
                                 f"got {self.batch_size}")
            if not self.temperature > 0:
                raise UsageError(f"temperature must be > 0, got {self.temperature}")
        elif self.identities_per_batch < 2:
            raise UsageError("identities_per_batch must be >= 2 (negatives come from other identities)")
        check_finetune(self.freeze_epochs, self.backbone_lr_scale, self.precision)


def pk_batches(ids: Sequence[str], p: int, k: int, rng: random.Random) -> list[list[int]]:
    """One epoch of identity-aware batches: ``p`` identities, up to ``k`` images each.

    Identities with one image still appear (as negatives for the others); every image is
    used about once per epoch.
    """
    by_id: dict[str, list[int]] = {}
    for i, x in enumerate(ids):
        by_id.setdefault(x, []).append(i)
    pools = {x: rng.sample(v, len(v)) for x, v in by_id.items()}
    batches = []
    while True:
        live = [x for x, v in pools.items() if v]
        if len(live) < 2:
            break
        rng.shuffle(live)
        chosen = sorted(live[:p], key=lambda x: -len(pools[x]))
        batch = []
        for x in chosen:
            batch += pools[x][:k]
            pools[x] = pools[x][k:]
        batches.append(batch)
    return batches


def distances(emb, metric: str):
    """Pairwise distance matrix of a batch (cosine distance = 1 - cosine similarity)."""
    import torch
    import torch.nn.functional as F

    if metric == "cosine":
        e = F.normalize(emb, dim=1)
        return 1 - e @ e.T
    return torch.cdist(emb, emb)


def metric_loss(emb, labels, loss: str, metric: str, margin: float):
    """Batch-hard triplet or contrastive loss over all pairs of a batch."""
    import torch

    d = distances(emb, metric)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=d.device)
    pos, neg = same & ~eye, ~same
    if loss == "triplet":
        hardest_pos = (d * pos).max(dim=1).values
        hardest_neg = torch.where(neg, d, torch.full_like(d, float("inf"))).min(dim=1).values
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return (emb * 0).sum()
        return torch.relu(hardest_pos - hardest_neg + margin)[valid].mean()
    pos_term = (d.pow(2) * pos).sum() / pos.sum().clamp_min(1)
    neg_term = (torch.relu(margin - d).pow(2) * neg).sum() / neg.sum().clamp_min(1)
    return pos_term + neg_term


def build_backbone(arch: str):
    import timm

    if not timm.is_model(arch):
        import difflib

        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        raise UsageError(f"unknown timm backbone '{arch}'" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return timm.create_model(arch, pretrained=False, num_classes=0)


def simclr_batches(n: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of SimCLR batches: every crop once, shuffled; a last batch of one is dropped
    (it has no negatives)."""
    order = rng.sample(range(n), n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in batches if len(b) >= 2]


def init_for(config: ReidConfig, settings=None):
    """The run's initial weights (recorded in ``out_dir/init.json``; see :mod:`wildspace.train.init`)."""
    from wildspace.settings import load_settings
    from wildspace.train.init import check_input_size, saved_or_resolved

    init = saved_or_resolved(Path(config.out_dir), config.init, config.backbone, settings or load_settings())
    check_input_size(init, config.input_size)
    return init


def train_embedder(config: ReidConfig, images: list[np.ndarray], ids: list[str] | None,
                   tick: Callable[[], bool] = lambda: False, on_epoch: Callable[[dict], None] = lambda log: None,
                   init=None):
    """Train the backbone on ``images`` (RGB uint8) with identities ``ids`` (``None`` for
    ntxent on unlabeled images); returns the net (on the CPU, in eval mode).

    A checkpoint (network, projection head, optimizer; tensors only) is written after each
    epoch to ``out_dir/reid-checkpoint.pt`` and resumed from when present.
    """
    import os

    import torch

    from wildspace.train import finetune as F
    from wildspace.train.images import ImageDataset
    from wildspace.train.init import load_init

    config.check()
    if ids is None and config.loss != "ntxent":
        raise UsageError(f"loss '{config.loss}' needs identities; only ntxent trains on unlabeled images")
    identities: Sequence[str] = ids if ids is not None else ()  # ntxent uses none
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    init = init or init_for(config)
    torch.manual_seed(config.seed)
    net = build_backbone(config.backbone)
    simclr = config.loss == "ntxent"
    modules = {"": net}
    if simclr:
        from wildspace.train.simclr import projection_head

        modules["head."] = projection_head(net.num_features, config.projection_dim)
    ckpt = out / "reid-checkpoint.pt"
    ck = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.is_file() else None
    pretrained = set(json.loads(ck["pretrained"])) if ck is not None and "pretrained" in ck else load_init(net, init)
    device = F.pick_device()
    prec = F.Precision(config.precision, device)
    for m in modules.values():
        m.to(device)
    opt = torch.optim.AdamW(F.param_groups(modules, pretrained, config.lr, config.backbone_lr_scale),
                            lr=config.lr, weight_decay=1e-4)
    start, history = 1, []
    if ck is not None:
        net.load_state_dict(ck["model"])
        if simclr and "head" in ck:
            modules["head."].load_state_dict(ck["head"])
        opt.load_state_dict(ck["optimizer"])
        history = json.loads(ck["history"])
        start = len(history) + 1
    mean, std = init.mean or (0.485, 0.456, 0.406), init.std or (0.229, 0.224, 0.225)
    if simclr:
        from wildspace.train.simclr import TwoViews, ntxent_loss

        views = TwoViews(images, config.input_size, mean, std)
    else:
        names = sorted(set(identities))
        y = torch.tensor([names.index(x) for x in identities])
        ds = ImageDataset(images, y.tolist(), config.input_size, mean, std, augment=True)
    for epoch in range(start, config.epochs + 1):
        torch.manual_seed(config.seed * 100_003 + epoch)
        rng = random.Random(config.seed * 100_003 + epoch)
        for m in modules.values():
            m.train()
        F.set_backbone_frozen(net, pretrained, frozen=epoch <= config.freeze_epochs)
        total, n = 0.0, 0
        batches = (simclr_batches(len(images), config.batch_size, rng) if simclr else
                   pk_batches(identities, config.identities_per_batch, config.images_per_identity, rng))
        for batch in batches:
            opt.zero_grad()
            if simclr:
                a, b = (v.to(device) for v in views.views(batch))
                with prec.autocast():
                    z = modules["head."](net(torch.cat([a, b]))).float()
                loss = ntxent_loss(z[:len(batch)], z[len(batch):], config.temperature)
            else:
                x = torch.stack([ds[i][0] for i in batch]).to(device)
                with prec.autocast():
                    emb = net(x).float()
                loss = metric_loss(emb, y[batch].to(device), config.loss, config.metric, config.margin)
            prec.step(loss, opt)
            total += loss.item() * len(batch)
            n += len(batch)
            if tick():
                return None
        history.append({"epoch": epoch, "loss": total / max(n, 1)})
        tmp = ckpt.with_name(".reid-checkpoint.tmp")
        state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "history": json.dumps(history),
                 "pretrained": json.dumps(sorted(pretrained))}
        if simclr:
            state["head"] = modules["head."].state_dict()
        torch.save(state, tmp)
        os.replace(tmp, ckpt)
        on_epoch(dict(history[-1], epochs=config.epochs))
    F.set_backbone_frozen(net, pretrained, frozen=False)
    net.cpu().eval()
    return net


def fit_knn_head(embeddings: np.ndarray, ids: Sequence[str], seed: int = 0) -> dict:
    """PCA + kNN with a 5-fold KFold grid search (the seed recipe); returns the head as plain
    data: ``{"params", "cv_accuracy", "mean", "components", "train", "labels"}``."""
    from sklearn.decomposition import PCA
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    X = np.asarray(embeddings, np.float64)
    n = len(X)
    folds = min(5, n)
    if folds < 2:
        raise UsageError(f"the kNN head needs at least 2 images, got {n}")
    train_n = n - -(-n // folds)  # the smallest training fold (KFold's largest test fold is ceil(n/folds))
    comps = sorted({c for c in (8, 16, 32, 64) if c <= min(train_n, X.shape[1])} or {min(train_n, X.shape[1])})
    ks = [k for k in (1, 3, 5, 7) if k <= train_n] or [1]
    grid = GridSearchCV(Pipeline([("pca", PCA(random_state=seed)), ("knn", KNeighborsClassifier())]),
                        {"pca__n_components": comps, "knn__n_neighbors": ks,
                         "knn__weights": ["uniform", "distance"], "knn__metric": ["euclidean", "cosine"]},
                        cv=KFold(folds, shuffle=True, random_state=seed), error_score=0.0)
    grid.fit(X, np.asarray(ids))
    best = grid.best_estimator_
    pca = best.named_steps["pca"]
    return {"params": {k.split("__", 1)[1]: v for k, v in grid.best_params_.items()},
            "cv_accuracy": float(grid.best_score_), "mean": pca.mean_.astype(np.float32),
            "components": pca.components_.astype(np.float32),
            "train": pca.transform(X).astype(np.float32), "labels": [str(x) for x in ids]}


def save_knn_head(head: dict, folder: str | Path) -> Path:
    """``knn_head.safetensors`` (mean, components, train) + ``knn_head.json`` (params, labels)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(np.ascontiguousarray(head[k])) for k in ("mean", "components", "train")},
              str(folder / "knn_head.safetensors"))
    (folder / "knn_head.json").write_text(json.dumps({k: head[k] for k in ("params", "cv_accuracy", "labels")},
                                                     indent=1), encoding="utf-8")
    return folder / "knn_head.json"


class KnnHead:
    """The saved head, rebuilt from arrays: ``predict(embeddings)`` → identity labels."""

    def __init__(self, folder: str | Path):
        from safetensors.numpy import load_file
        from sklearn.neighbors import KNeighborsClassifier

        folder = Path(folder)
        meta = json.loads((folder / "knn_head.json").read_text(encoding="utf-8"))
        arrays = load_file(str(folder / "knn_head.safetensors"))
        self.mean, self.components = arrays["mean"], arrays["components"]
        p = meta["params"]
        self.knn = KNeighborsClassifier(n_neighbors=int(p["n_neighbors"]), weights=p["weights"], metric=p["metric"])
        self.knn.fit(arrays["train"], np.asarray(meta["labels"]))
        self.params, self.cv_accuracy = p, meta["cv_accuracy"]

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        z = (np.asarray(embeddings, np.float32) - self.mean) @ self.components.T
        return self.knn.predict(z)
