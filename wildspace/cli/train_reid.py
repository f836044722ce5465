"""``python -m wildspace train reid`` and ``python -m wildspace evaluate reid``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from wildspace.train.reid_data import load_identity_images, open_set_metrics, reid_markdown


def add_reid_parser(tsub, positive) -> None:
    from wildspace.train.reid import METRICS, REID_LOSSES

    r = tsub.add_parser("reid", help="train a re-ID embedder (triplet/contrastive, or self-supervised SimCLR) "
                        "and a kNN head")
    r.add_argument("--data", type=Path, required=True, help="folder of images")
    r.add_argument("--identities", type=Path, help="CSV: file, identity (+ optional bbox); optional with "
                   "--loss ntxent (then every image in --data is used, and there is no kNN head or evaluation)")
    r.add_argument("--name", help="model name (default: from the data folder)")
    r.add_argument("--backbone", help="timm architecture (default: the --init model's, else resnet18)")
    r.add_argument("--loss", choices=REID_LOSSES, default="triplet",
                   help="triplet / contrastive (identities), or ntxent: SimCLR on two augmented views per crop")
    r.add_argument("--temperature", type=float, default=0.5, help="ntxent softmax temperature")
    r.add_argument("--batch-size", type=positive, default=32, help="ntxent: crops per batch")
    r.add_argument("--metric", choices=METRICS, default="cosine", help="embedding distance used in training")
    r.add_argument("--margin", type=float, default=0.3)
    r.add_argument("--epochs", type=positive, default=10)
    r.add_argument("--input-size", type=positive, default=128)
    r.add_argument("--identities-per-batch", type=positive, default=4)
    r.add_argument("--images-per-identity", type=positive, default=4)
    r.add_argument("--lr", type=float, default=3e-4)
    r.add_argument("--test-fraction", type=float, default=0.25, help="held-out images per identity")
    r.add_argument("--seed", type=int, default=0)
    from wildspace.cli.common import add_init_arguments

    add_init_arguments(r)
    r.add_argument("--output", "-o", type=Path, help="run folder (default <data dir>/training/<name>)")
    r.add_argument("--license", default="unknown")
    r.add_argument("--no-install", action="store_true")
    r.add_argument("--replace", action="store_true")
    from wildspace.cli.common import add_push_arguments

    add_push_arguments(r)


def add_reid_eval_parser(esub) -> None:
    r = esub.add_parser("reid", help="leave-one-out top-k, mAP, MAP@k for an embedder on labelled images")
    r.add_argument("--model", required=True, help="embedder model name (task embed)")
    r.add_argument("--data", type=Path, required=True, help="folder of images")
    r.add_argument("--identities", type=Path, required=True, help="CSV: file, identity (+ optional bbox)")
    r.add_argument("--output", "-o", type=Path, required=True, help="report folder")


def cmd_train_reid(args: argparse.Namespace) -> int:
    from wildspace.cli.common import push_token, push_trained
    from wildspace.hub.specs import model_name
    from wildspace.settings import load_settings
    from wildspace.train.reid import ReidConfig

    settings = load_settings()
    token = push_token(args)
    from wildspace.cli.common import default_arch

    name = model_name(args.name or args.data.name)
    config = ReidConfig(images=str(args.data), identities=str(args.identities) if args.identities else "",
                        out_dir=str(args.output or settings.home / "training" / name), name=name,
                        backbone=default_arch(args.backbone, args.init, settings), loss=args.loss,
                        metric=args.metric, margin=args.margin, epochs=args.epochs, input_size=args.input_size,
                        identities_per_batch=args.identities_per_batch,
                        images_per_identity=args.images_per_identity, lr=args.lr,
                        test_fraction=args.test_fraction, seed=args.seed, init=args.init,
                        temperature=args.temperature, batch_size=args.batch_size,
                        freeze_epochs=args.freeze_epochs, backbone_lr_scale=args.backbone_lr_scale,
                        precision=args.precision)
    from wildspace.train.reid_run import run_reid

    s = run_reid(config, settings, license=args.license, install=not args.no_install, replace=args.replace,
                 on_epoch=lambda log: print(f"epoch {log['epoch']}/{log['epochs']}: loss {log['loss']:.4f}",
                                            file=sys.stderr, flush=True))
    if s["state"] != "done":
        print("stopped; run again to resume", file=sys.stderr)
        return 1
    m = s["test"]
    if m:
        print(f"held-out queries: top-1 {m['top1']}, mAP {m['mAP']}; kNN head {s['knn']['params']} "
              f"(5-fold CV accuracy {s['knn']['cv_accuracy']:.3f}, test accuracy {s['knn']['test_accuracy']})")
    elif s.get("knn") is None:
        print(f"trained on {s['images']} unlabeled images (no identities: no kNN head, no held-out metrics)")
    print(f"model '{s['model']}' -> {s['model_folder']}; report {s['report']}")
    push_trained(args, s["model_folder"], name, token, settings)
    return 0


def cmd_evaluate_reid(args: argparse.Namespace) -> int:
    from wildspace.evaluation.report import write_report
    from wildspace.reid.embedders import load_embedder
    from wildspace.settings import load_settings

    settings = load_settings()
    emb = load_embedder(args.model, settings)
    images, ids, skipped = load_identity_images(args.data, args.identities, emb.input_size, settings.max_pixels)
    e = emb.embed(images)
    sim = e @ e.T
    m = open_set_metrics(sim, ids, ids, exclude=np.eye(len(ids), dtype=bool))
    paths = write_report(args.output, f"Re-ID evaluation of {args.model}", [
        ("Data", f"`{args.data}` with `{args.identities}`: {len(ids)} images of {len(set(ids))} identities, "
                 f"{len(skipped)} unreadable; leave-one-image-out (each image queries all the others)"),
        ("Metrics", reid_markdown(m))], {"task": "embed", "model": args.model, "metrics": m, "skipped": skipped})
    print(f"top-1 {m['top1']}, top-5 {m['top5']}, mAP {m['mAP']} -> {paths['markdown']}")
    return 0
