"""``python -m wildspace train …`` and ``python -m wildspace evaluate …``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wildspace.cli.common import add_init_arguments, add_push_arguments, default_arch, push_token, push_trained
from wildspace.hub.specs import model_name


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def _mapping(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    old, new = text.split("=", 1)
    return old.strip(), new.strip()




def add_parsers(sub) -> None:
    from wildspace.evaluation.detection import CLASS_MODES
    from wildspace.train.data import BALANCE, SPLITS
    from wildspace.train.losses import LOSSES

    t = sub.add_parser("train", help="train a classifier or a re-ID embedder on your own data")
    tsub = t.add_subparsers(dest="train_command", required=True)
    c = tsub.add_parser("classifier", help="fine-tune an image classifier (ImageFolder or CSV)")
    c.add_argument("--data", type=Path, required=True,
                   help="folder of class folders, or a CSV (file,label[,location,sequence])")
    c.add_argument("--images", type=Path, help="folder the CSV's paths are relative to (default: the CSV's folder)")
    c.add_argument("--name", help="model name (default: from the data folder)")
    c.add_argument("--arch", help="any torchvision or timm architecture (default: the --init model's, else resnet18)")
    c.add_argument("--family", choices=["timm", "torchvision"], help="default: torchvision if it knows --arch")
    c.add_argument("--epochs", type=_positive, default=10)
    c.add_argument("--batch-size", type=_positive, default=16)
    c.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (cosine schedule)")
    c.add_argument("--input-size", type=_positive, default=160, help="square input side in px")
    c.add_argument("--loss", choices=LOSSES, default="ce")
    c.add_argument("--split", choices=SPLITS, default="random",
                   help="random (stratified), location or sequence (CSV columns; a group stays on one side)")
    c.add_argument("--test-fraction", type=_fraction, default=0.2)
    c.add_argument("--val-fraction", type=_fraction, default=0.15, help="of the rest, for early stopping")
    c.add_argument("--balance", choices=BALANCE, default="sampler", help="class balancing (default: sampler)")
    c.add_argument("--patience", type=_positive, default=5, help="early stopping: epochs without a better val loss")
    c.add_argument("--seed", type=int, default=0)
    add_init_arguments(c)
    c.add_argument("--kind", choices=["species", "products"], default="species",
                   help="products: a model for the Products tab (labels from the product taxonomy)")
    c.add_argument("--label-map", type=_mapping, action="append", default=[], metavar="OLD=NEW",
                   help="rename a class, e.g. ivory=elephant_ivory (repeatable)")
    c.add_argument("--crop-with", metavar="MODEL", help="crop each image to its best animal box from this "
                   "detector (model name or weights file) before training")
    c.add_argument("--crop-threshold", type=_fraction, default=0.2)
    c.add_argument("--output", "-o", type=Path, help="run folder (default <data dir>/training/<name>); "
                   "an existing run there is resumed from its last checkpoint")
    c.add_argument("--license", default="unknown", help="licence of the trained weights (model card)")
    c.add_argument("--no-install", action="store_true", help="only write the model folder")
    c.add_argument("--replace", action="store_true", help="overwrite your own model of the same name")
    add_push_arguments(c)
    from wildspace.cli.train_reid import add_reid_parser

    add_reid_parser(tsub, _positive)
    pub = tsub.add_parser("publish", help="install a model a queued training job made but did not install "
                          "(on a public Space, visitors' models stay theirs until published)")
    pub.add_argument("job_id", help="the training job's id")
    pub.add_argument("--replace", action="store_true", help="overwrite your own model of the same name")

    e = sub.add_parser("evaluate", help="evaluation report (JSON + Markdown) for a model and a labelled set")
    esub = e.add_subparsers(dest="evaluate_command", required=True)
    ec = esub.add_parser("classifier", help="accuracy, per-class P/R/F1, confusion matrix")
    ec.add_argument("--model", required=True, help="classifier model name")
    ec.add_argument("--data", type=Path, required=True, help="folder of class folders, or a CSV")
    ec.add_argument("--images", type=Path)
    ec.add_argument("--label-map", type=_mapping, action="append", default=[], metavar="OLD=NEW")
    ec.add_argument("--output", "-o", type=Path, required=True, help="report folder")
    ed = esub.add_parser("detection", help="precision/recall against COCO or YOLO ground truth")
    ed.add_argument("--results", type=Path, required=True, help="MegaDetector batch JSON (from `detect`)")
    ed.add_argument("--ground-truth", type=Path, required=True, help="COCO .json, or a folder of YOLO .txt files")
    ed.add_argument("--names", help="YOLO class names, comma-separated (default: all 'animal')")
    ed.add_argument("--threshold", type=_fraction, default=0.2)
    ed.add_argument("--iou", type=_fraction, default=0.5)
    ed.add_argument("--classes", choices=CLASS_MODES, default="animal",
                    help="animal: animal predictions vs non-person/vehicle boxes; any: class-agnostic; "
                         "same: equal names")
    ed.add_argument("--output", "-o", type=Path, required=True, help="report folder")
    from wildspace.cli.train_reid import add_reid_eval_parser

    add_reid_eval_parser(esub)


def cmd_train(args: argparse.Namespace) -> int:
    if args.train_command == "publish":
        from wildspace.jobs.queue import JobQueue
        from wildspace.jobs.training import publish
        from wildspace.settings import load_settings

        settings = load_settings()
        spec = publish(JobQueue(settings).store, args.job_id, settings, replace=args.replace)
        print(f"published {spec.name}: every visitor of the app sees it after a restart")
        return 0
    if args.train_command == "reid":
        from wildspace.cli.train_reid import cmd_train_reid

        return cmd_train_reid(args)
    from wildspace.settings import load_settings
    from wildspace.train.classifier import TrainConfig
    from wildspace.train.runs import run_classifier

    settings = load_settings()
    name = model_name(args.name or args.data.stem)
    out = args.output or settings.home / "training" / name
    config = TrainConfig(
        data=str(args.data), out_dir=str(out), name=name, arch=default_arch(args.arch, args.init, settings),
        family=args.family, freeze_epochs=args.freeze_epochs, backbone_lr_scale=args.backbone_lr_scale,
        precision=args.precision,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, input_size=args.input_size,
        loss=args.loss, split=args.split, test_fraction=args.test_fraction, val_fraction=args.val_fraction,
        balance=args.balance, patience=args.patience, seed=args.seed, init=args.init,
        kind=args.kind, label_map=dict(args.label_map), images_dir=str(args.images) if args.images else None,
        crop_with=args.crop_with, crop_threshold=args.crop_threshold)
    config.check()
    token = push_token(args)
    from wildspace.train.classifier import Hooks

    def on_epoch(log: dict) -> None:
        val = f", val loss {log['val_loss']:.4f}, val acc {log['val_accuracy']:.3f}" if "val_loss" in log else ""
        print(f"epoch {log['epoch']}/{log['epochs']}: train loss {log['train_loss']:.4f}{val}",
              file=sys.stderr, flush=True)

    summary = run_classifier(config, settings, Hooks(on_epoch=on_epoch), license=args.license,
                             install=not args.no_install, replace=args.replace)
    if summary["state"] != "done":
        print(f"stopped after epoch {summary['epochs_done']}; run again to resume", file=sys.stderr)
        return 1
    t = summary["test"]
    if t:
        print(f"held-out test: accuracy {t['accuracy']:.3f}, macro accuracy {t['macro_accuracy']:.3f} "
              f"on {t['samples']} images")
    print(f"model '{summary['model']}' -> {summary['model_folder']}; report {summary['report']}")
    push_trained(args, summary["model_folder"], name, token, settings)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.evaluate_command == "reid":
        from wildspace.cli.train_reid import cmd_evaluate_reid

        return cmd_evaluate_reid(args)
    if args.evaluate_command == "detection":
        from wildspace.runs.evaluation import evaluate_detection

        names = [n.strip() for n in args.names.split(",")] if args.names else None
        m, paths = evaluate_detection(args.results, args.ground_truth, args.output, args.threshold,
                                      args.iou, args.classes, names)
        p = "n/a" if m["precision"] is None else f"{m['precision']:.3f}"
        r = "n/a" if m["recall"] is None else f"{m['recall']:.3f}"
        print(f"precision {p}, recall {r} at conf >= {m['threshold']} and IoU >= {m['iou']} "
              f"({m['tp']} TP, {m['fp']} FP, {m['fn']} FN; AP {m['ap'] if m['ap'] is None else round(m['ap'], 3)}) "
              f"-> {paths['markdown']}")
        return 0
    from wildspace.runs.evaluation import evaluate_classifier

    m, paths = evaluate_classifier(args.model, args.data, args.output, args.images, dict(args.label_map))
    print(f"accuracy {m['accuracy']:.3f}, macro accuracy {m['macro_accuracy']:.3f} on {m['samples']} images "
          f"-> {paths['markdown']}")
    print(json.dumps({k: m[k] for k in ("accuracy", "macro_accuracy", "weighted")}), file=sys.stderr)
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate}
