"""Fine-tune an image classifier: training loop, early stopping, checkpoints, resume.

Everything a run needs to continue lives in its output folder:

- ``split.json``: the samples and the train/val/test split (fixed at the first start, so a
  resumed run evaluates on the same held-out images);
- ``checkpoint.pt``: after **every** epoch (written atomically): network, optimizer and
  scheduler state, early-stopping state and the history. Only tensors and plain values, read
  back with ``torch.load(weights_only=True)``;
- ``best.safetensors``: the weights with the best validation loss so far;
- ``init.json``: the initial weights (a pinned pretrained backbone by default, see
  :mod:`wildspace.train.init`), their source and sha256.

Fine-tuning (:mod:`wildspace.train.finetune`): the pretrained tensors learn at
``lr * backbone_lr_scale`` and the new head at ``lr``, optionally after ``freeze_epochs`` epochs
of training the head alone; images are normalised with the backbone's own mean/std.

Each epoch seeds the random generators from ``(seed, epoch)``, so a run that is killed and
resumed from its last checkpoint ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypedDict

import numpy as np

from wildspace.classify.models import IMAGENET_MEAN, IMAGENET_STD, create_network
from wildspace.errors import UsageError
from wildspace.train import data as D
from wildspace.train.images import ImageDataset, decode_all

if TYPE_CHECKING:
    import torch

    from wildspace.train.init import InitWeights

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
    init: str | None = "auto"  # auto | imagenet | none | a model name | a weights file (the head may differ)
    kind: str = "species"
    label_map: dict[str, str] = field(default_factory=dict)
    images_dir: str | None = None
    crop_with: str | None = None  # detector model name or weights file: train on its animal crops
    crop_threshold: float = 0.2
    freeze_epochs: int = 0
    backbone_lr_scale: float = 0.1
    precision: str = "auto"

    def check(self) -> None:
        """Raise ``ValueError`` naming the bad field and the valid choices."""
        from wildspace.train.losses import LOSSES

        if self.loss not in LOSSES:
            raise UsageError(f"loss '{self.loss}' is not one of {', '.join(LOSSES)}")
        if self.split not in D.SPLITS:
            raise UsageError(f"split '{self.split}' is not one of {', '.join(D.SPLITS)}")
        if self.balance not in D.BALANCE:
            raise UsageError(f"balance '{self.balance}' is not one of {', '.join(D.BALANCE)}")
        for name in ("epochs", "batch_size", "input_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if self.family not in (None, "timm", "torchvision"):
            raise UsageError(f"family '{self.family}' is not one of timm, torchvision")
        from wildspace.train.finetune import check_finetune

        check_finetune(self.freeze_epochs, self.backbone_lr_scale, self.precision)


@dataclass
class Hooks:
    """Callbacks: ``on_epoch(log)`` after each checkpoint; ``tick()`` after each batch,
    returning True to stop now (cancel, worker shutdown): the epoch in hand is dropped and
    the run continues from the last checkpoint next time."""

    on_epoch: Callable[[dict], None] = lambda log: None
    tick: Callable[[], bool] = lambda: False


class _Progress(TypedDict):
    """Where a run stands (saved in the checkpoint as JSON)."""

    epoch: int
    best_loss: float
    best_epoch: int | None
    bad: int
    finished: bool


@dataclass
class TrainOutcome:
    state: str  # "done" or "stopped"
    labels: list[str]
    history: list[dict]
    epochs_done: int
    best_epoch: int | None
    test: dict | None  # classification metrics on the held-out split
    failures: list[tuple[str, str]]
    net: torch.nn.Module | None = None
    family: str = ""
    counts: dict = field(default_factory=dict)
    init: InitWeights | None = None
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    precision: str = "fp32"


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


def _loader(ds, config: TrainConfig, epoch: int, sample_weights: list[float] | None):
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler

    g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    if sample_weights is not None:
        sampler = WeightedRandomSampler(sample_weights, num_samples=len(ds), replacement=True, generator=g)
        return DataLoader(ds, batch_size=config.batch_size, sampler=sampler, drop_last=len(ds) > config.batch_size)
    return DataLoader(ds, batch_size=config.batch_size, shuffle=True, generator=g,
                      drop_last=len(ds) > config.batch_size)


def predict_arrays(net, images: list[np.ndarray], input_size: int, batch_size: int = 32,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Softmax probabilities with the inference preprocessing (see :mod:`wildspace.train.images`)."""
    import torch

    ds = ImageDataset(images, [0] * len(images), input_size, mean, std, augment=False)
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
    from wildspace.settings import load_settings
    from wildspace.train import finetune as F
    from wildspace.train.init import check_input_size, load_init, saved_or_resolved
    from wildspace.train.losses import make_loss

    hooks = hooks or Hooks()
    config.check()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples, split = _prepare(config, out)
    init = saved_or_resolved(out, config.init, config.arch, load_settings())  # fails fast, before decoding
    check_input_size(init, config.input_size)
    labels = D.class_names(samples)
    images, failures = decode_all(samples, config.input_size, hooks.tick)
    keep = lambda idx: [i for i in idx if i in images]  # noqa: E731
    train_idx, val_idx, test_idx = keep(split.train), keep(split.val), keep(split.test)
    if not train_idx:
        raise UsageError("no readable training images")
    target = {c: i for i, c in enumerate(labels)}
    family = config.family or (init.family if init.kind == "spec" else None) or resolve_family(config.arch, None)
    torch.manual_seed(config.seed)
    net = create_network(family, config.arch, len(labels))
    ckpt_path = out / CHECKPOINT
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=True) if ckpt_path.is_file() else None
    if ck is not None and (ck["labels"] != labels or ck["arch"] != config.arch):
        raise UsageError(f"{ckpt_path} belongs to another run ({ck['arch']}, {ck['labels']}); "
                         "use a new output folder")
    pretrained = set(json.loads(ck["pretrained"])) if ck is not None and "pretrained" in ck else load_init(net, init)
    device = F.pick_device()
    prec = F.Precision(config.precision, device)
    net.to(device)
    weights = D.balance_weights(samples, train_idx, labels)
    loss_fn = make_loss(config.loss, len(labels), weights if config.balance == "weights" else None).to(device)
    opt = torch.optim.AdamW(F.param_groups({"": net}, pretrained, config.lr, config.backbone_lr_scale),
                            lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    st: _Progress = {"epoch": 0, "best_loss": float("inf"), "best_epoch": None, "bad": 0, "finished": False}
    history: list[dict] = []
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        st = json.loads(ck["state"])
        history = json.loads(ck["history"])
    mean, std = init.mean or IMAGENET_MEAN, init.std or IMAGENET_STD
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
        F.set_backbone_frozen(net, pretrained, frozen=epoch <= config.freeze_epochs)
        total, n = 0.0, 0
        for x, y in _loader(train_ds, config, epoch, sample_w):
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            with prec.autocast():
                logits = net(x)
            loss = loss_fn(logits.float(), y)
            prec.step(loss, opt)
            total += loss.item() * len(y)
            n += len(y)
            if hooks.tick():
                stopped = True
                break
        if stopped:
            break
        sched.step()
        log = {"epoch": epoch, "train_loss": total / max(n, 1), **_validate(net, val_ds, loss_fn, device)}
        monitor = log.get("val_loss", log["train_loss"])
        if monitor < st["best_loss"] - 1e-6:
            st["best_loss"], st["best_epoch"], st["bad"] = monitor, epoch, 0
            save_classifier_weights(net, out / f".{BEST}.tmp")
            os.replace(out / f".{BEST}.tmp", out / BEST)
        else:
            st["bad"] += 1
        st["epoch"] = epoch
        st["finished"] = st["bad"] >= config.patience or epoch >= config.epochs
        log["early_stop"] = st["bad"] >= config.patience
        history.append(log)
        _save_checkpoint(ckpt_path, net, opt, sched, st, history, labels, config, pretrained)
        hooks.on_epoch(dict(log, epochs=config.epochs))
    F.set_backbone_frozen(net, pretrained, frozen=False)
    net.cpu()
    counts = {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)}
    more: dict[str, Any] = {"family": family, "counts": counts, "init": init, "mean": tuple(mean), "std": tuple(std),
            "precision": prec.name}
    if stopped or not st["finished"]:
        return TrainOutcome("stopped", labels, history, st["epoch"], st["best_epoch"], None, failures, **more)
    from wildspace.classify.weights import read_tensors

    net.load_state_dict(read_tensors(out / BEST))
    test = None
    if test_idx:
        probs = predict_arrays(net, [images[i] for i in test_idx], config.input_size, mean=mean, std=std)
        test = classification_metrics([target[samples[i].label] for i in test_idx], probs.argmax(1), labels)
        test["files"] = [samples[i].path for i in test_idx]
    return TrainOutcome("done", labels, history, st["epoch"], st["best_epoch"], test, failures, net=net, **more)


def _validate(net, ds, loss_fn, device: str = "cpu") -> dict:
    import torch

    if len(ds) == 0:
        return {}
    net.eval()
    parts = []
    with torch.inference_mode():
        for i in range(0, len(ds), 64):
            parts.append(net(torch.stack([ds[j][0] for j in range(i, min(i + 64, len(ds)))]).to(device)))
        logits, y = torch.cat(parts).float(), torch.tensor(ds.targets, device=device)
        return {"val_loss": float(loss_fn(logits, y)),
                "val_accuracy": float((logits.argmax(1) == y).float().mean())}


def _save_checkpoint(path: Path, net, opt, sched, st: _Progress, history: list, labels: list, config,
                     pretrained: set[str]) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "state": json.dumps(st), "history": json.dumps(history), "labels": list(labels),
                "arch": config.arch, "pretrained": json.dumps(sorted(pretrained))}, tmp)
    os.replace(tmp, path)
