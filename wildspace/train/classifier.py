"""Fine-tune an image classifier: training loop, early stopping, checkpoints, resume.

Everything a run needs to continue lives in its output folder:

- ``split.json``: the samples and the train/val/test split (fixed at the first start, so a
  resumed run evaluates on the same held-out images);
- ``checkpoint.pt``: after **every** epoch (written atomically): network, optimizer and
  scheduler state, early-stopping state and the history. Only tensors and plain values, read
  back with ``torch.load(weights_only=True)``;
- ``best.safetensors``: the weights with the best validation loss so far.

Each epoch seeds the random generators from ``(seed, epoch)``, so a run that is killed and
resumed from its last checkpoint ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from wildspace.classify.models import IMAGENET_MEAN, IMAGENET_STD, create_network
from wildspace.train import data as D
from wildspace.train.images import ImageDataset, decode_all

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"


@dataclass
class TrainConfig:
    """What to train. Sizes in px, ``lr`` for AdamW with a cosine schedule over ``epochs``."""

    data: str
    out_dir: str
    name: str = "my-classifier"
    arch: str = "resnet18"
    family: str | None = None  # timm or torchvision; default torchvision when it knows ``arch``
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    input_size: int = 160
    loss: str = "ce"
    split: str = "random"
    test_fraction: float = 0.2
    val_fraction: float = 0.15
    balance: str = "sampler"
    patience: int = 5
    seed: int = 0
    init: str | None = None  # local weight file to start from (the head may differ)
    kind: str = "species"
    label_map: dict[str, str] = field(default_factory=dict)
    images_dir: str | None = None
    crop_with: str | None = None  # detector model name or weights file: train on its animal crops
    crop_threshold: float = 0.2

    def check(self) -> None:
        """Raise ``ValueError`` naming the bad field and the valid choices."""
        from wildspace.train.losses import LOSSES

        if self.loss not in LOSSES:
            raise ValueError(f"loss '{self.loss}' is not one of {', '.join(LOSSES)}")
        if self.split not in D.SPLITS:
            raise ValueError(f"split '{self.split}' is not one of {', '.join(D.SPLITS)}")
        if self.balance not in D.BALANCE:
            raise ValueError(f"balance '{self.balance}' is not one of {', '.join(D.BALANCE)}")
        for name in ("epochs", "batch_size", "input_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.family not in (None, "timm", "torchvision"):
            raise ValueError(f"family '{self.family}' is not one of timm, torchvision")


@dataclass
class Hooks:
    """Callbacks: ``on_epoch(log)`` after each checkpoint; ``tick()`` after each batch,
    returning True to stop now (cancel, worker shutdown): the epoch in hand is dropped and
    the run continues from the last checkpoint next time."""

    on_epoch: Callable[[dict], None] = lambda log: None
    tick: Callable[[], bool] = lambda: False


@dataclass
class TrainOutcome:
    state: str  # "done" or "stopped"
    labels: list[str]
    history: list[dict]
    epochs_done: int
    best_epoch: int | None
    test: dict | None  # classification metrics on the held-out split
    failures: list[tuple[str, str]]
    net: object = None
    family: str = ""
    counts: dict = field(default_factory=dict)


def resolve_family(arch: str, family: str | None) -> str:
    if family:
        return family
    import torchvision

    return "torchvision" if arch in torchvision.models.list_models(module=torchvision.models) else "timm"


def _prepare(config: TrainConfig, out: Path) -> tuple[list[D.Sample], D.Split]:
    path = out / "split.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        return [D.Sample(**s) for s in saved["samples"]], D.Split.from_json(json.dumps(saved["split"]))
    samples = D.load_samples(config.data, config.images_dir)
    if config.label_map:
        samples = D.rename_labels(samples, config.label_map)
    split = D.split_samples(samples, config.split, config.test_fraction, config.val_fraction, config.seed)
    _atomic_text(path, json.dumps({"samples": [asdict(s) for s in samples], "split": asdict(split)}))
    return samples, split


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _init_weights(net, path: str) -> int:
    """Load what fits from ``path`` (a different head is skipped); returns tensors loaded."""
    from wildspace.classify.weights import read_tensors

    own = net.state_dict()
    state = read_tensors(path)
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(fit) < len(own) // 2:
        raise ValueError(f"--init {Path(path).name}: only {len(fit)} of the network's {len(own)} tensors "
                         "fit this architecture; pick the arch the weights were trained with")
    net.load_state_dict(fit, strict=False)
    return len(fit)


def _loader(ds, config: TrainConfig, epoch: int, sample_weights: list[float] | None):
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler

    g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    if sample_weights is not None:
        sampler = WeightedRandomSampler(sample_weights, num_samples=len(ds), replacement=True, generator=g)
        return DataLoader(ds, batch_size=config.batch_size, sampler=sampler, drop_last=len(ds) > config.batch_size)
    return DataLoader(ds, batch_size=config.batch_size, shuffle=True, generator=g,
                      drop_last=len(ds) > config.batch_size)


def predict_arrays(net, images: list[np.ndarray], input_size: int, batch_size: int = 32) -> np.ndarray:
    """Softmax probabilities with the inference preprocessing (see :mod:`wildspace.train.images`)."""
    import torch

    ds = ImageDataset(images, [0] * len(images), input_size, IMAGENET_MEAN, IMAGENET_STD, augment=False)
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(ds), batch_size):
            x = torch.stack([ds[j][0] for j in range(i, min(i + batch_size, len(ds)))])
            out.append(torch.softmax(net(x), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def train_classifier(config: TrainConfig, hooks: Hooks | None = None) -> TrainOutcome:
    """Train (or resume) the run in ``config.out_dir``; see the module docstring."""
    import torch

    from wildspace.classify.models import save_classifier_weights
    from wildspace.evaluation.classification import classification_metrics
    from wildspace.train.losses import make_loss

    hooks = hooks or Hooks()
    config.check()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples, split = _prepare(config, out)
    labels = D.class_names(samples)
    images, failures = decode_all(samples, config.input_size, hooks.tick)
    keep = lambda idx: [i for i in idx if i in images]  # noqa: E731
    train_idx, val_idx, test_idx = keep(split.train), keep(split.val), keep(split.test)
    if not train_idx:
        raise ValueError("no readable training images")
    target = {c: i for i, c in enumerate(labels)}
    family = resolve_family(config.arch, config.family)
    torch.manual_seed(config.seed)
    net = create_network(family, config.arch, len(labels))
    if config.init:
        _init_weights(net, config.init)
    weights = D.balance_weights(samples, train_idx, labels)
    loss_fn = make_loss(config.loss, len(labels), weights if config.balance == "weights" else None)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    st = {"epoch": 0, "best_loss": float("inf"), "best_epoch": None, "bad": 0, "finished": False}
    history: list[dict] = []
    ckpt_path = out / CHECKPOINT
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck["labels"] != labels or ck["arch"] != config.arch:
            raise ValueError(f"{ckpt_path} belongs to another run ({ck['arch']}, {ck['labels']}); "
                             "use a new output folder")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        st = json.loads(ck["state"])
        history = json.loads(ck["history"])
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    train_ds = ImageDataset([images[i] for i in train_idx], [target[samples[i].label] for i in train_idx],
                            config.input_size, mean, std, augment=True)
    val_ds = ImageDataset([images[i] for i in val_idx], [target[samples[i].label] for i in val_idx],
                          config.input_size, mean, std, augment=False)
    sample_w = [weights[target[samples[i].label]] for i in train_idx] if config.balance == "sampler" else None
    stopped = False
    while not st["finished"] and st["epoch"] < config.epochs:
        epoch = st["epoch"] + 1
        torch.manual_seed(config.seed * 100_003 + epoch)
        net.train()
        total, n = 0.0, 0
        for x, y in _loader(train_ds, config, epoch, sample_w):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            n += len(y)
            if hooks.tick():
                stopped = True
                break
        if stopped:
            break
        sched.step()
        log = {"epoch": epoch, "train_loss": total / max(n, 1), **_validate(net, val_ds, loss_fn)}
        monitor = log.get("val_loss", log["train_loss"])
        if monitor < st["best_loss"] - 1e-6:
            st.update(best_loss=monitor, best_epoch=epoch, bad=0)
            save_classifier_weights(net, out / f".{BEST}.tmp")
            os.replace(out / f".{BEST}.tmp", out / BEST)
        else:
            st["bad"] += 1
        st["epoch"] = epoch
        st["finished"] = st["bad"] >= config.patience or epoch >= config.epochs
        log["early_stop"] = st["bad"] >= config.patience
        history.append(log)
        _save_checkpoint(ckpt_path, net, opt, sched, st, history, labels, config)
        hooks.on_epoch(dict(log, epochs=config.epochs))
    counts = {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)}
    if stopped or not st["finished"]:
        return TrainOutcome("stopped", labels, history, st["epoch"], st["best_epoch"], None, failures,
                            family=family, counts=counts)
    from wildspace.classify.weights import read_tensors

    net.load_state_dict(read_tensors(out / BEST))
    test = None
    if test_idx:
        probs = predict_arrays(net, [images[i] for i in test_idx], config.input_size)
        test = classification_metrics([target[samples[i].label] for i in test_idx], probs.argmax(1), labels)
        test["files"] = [samples[i].path for i in test_idx]
    return TrainOutcome("done", labels, history, st["epoch"], st["best_epoch"], test, failures,
                        net=net, family=family, counts=counts)


def _validate(net, ds, loss_fn) -> dict:
    import torch

    if len(ds) == 0:
        return {}
    net.eval()
    logits = []
    with torch.inference_mode():
        for i in range(0, len(ds), 64):
            logits.append(net(torch.stack([ds[j][0] for j in range(i, min(i + 64, len(ds)))])))
        logits, y = torch.cat(logits), torch.tensor(ds.targets)
        return {"val_loss": float(loss_fn(logits, y)),
                "val_accuracy": float((logits.argmax(1) == y).float().mean())}


def _save_checkpoint(path: Path, net, opt, sched, st: dict, history: list, labels: list, config) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "state": json.dumps(st), "history": json.dumps(history), "labels": list(labels),
                "arch": config.arch}, tmp)
    os.replace(tmp, path)
