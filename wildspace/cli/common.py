"""What every command group shares: argument types, help texts, the push options, CliError."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wildspace.errors import UsageError, WildspaceError

DEFAULT_MODEL = "megadetector-v5a"
DEFAULT_OUTPUT_THRESHOLD = 0.005  # MegaDetector's batch default: keep low boxes, filter later


class CliError(WildspaceError):
    """A user-facing error: printed as one line, exit status 1."""


INIT_HELP = ("starting weights: auto (default: the pinned ImageNet backbone of --arch when one is known, "
             "else random), imagenet, none (random), a model name (`models list`: backbones, timm embedders, "
             "classifiers) or a weights file")


def fraction_arg(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be between 0 and 1, got {text}")
    return v


def positive_arg(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def positive_float_arg(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def batch_size_arg(text: str) -> int | None:
    return None if text == "auto" else positive_arg(text)


BACKEND_HELP = ("inference backend: torch (eager PyTorch), onnx (ONNX Runtime, CPU: exported once "
                "and cached, checked against torch) or auto (onnx on CPU unless measured clearly "
                "slower on this machine, else torch); default WILDSPACE_BACKEND or auto")
PRECISION_HELP = ("CPU arithmetic: fp32 (the reference), bf16 (eager PyTorch bf16 autocast, AMX/AVX-512 "
                  "BF16) or auto (a reduced precision only where it passed parity on real weights of "
                  "the model's family, else fp32); default WILDSPACE_PRECISION or auto")


def add_push_arguments(p) -> None:
    p.add_argument("--push-to-hub", metavar="REPO", help="upload the model folder to this Hub model repo")
    p.add_argument("--token", help="Hub token with write access (default HF_TOKEN)")
    p.add_argument("--public", action="store_true", help="create the Hub repo public (default private)")


def push_token(args: argparse.Namespace) -> str | None:
    """The Hub token for ``--push-to-hub`` (checked before training, not after)."""
    token = args.token or os.environ.get("HF_TOKEN")
    if args.push_to_hub and not token:
        raise UsageError("--push-to-hub needs a token: --token or HF_TOKEN")
    return token


def push_trained(args: argparse.Namespace, model_folder: str, name: str, token: str | None, settings) -> None:
    """Upload a finished run's model folder when ``--push-to-hub`` was given; print the commit."""
    if not args.push_to_hub:
        return
    from wildspace.hub.specs import load_spec_file
    from wildspace.train.export import ExportedModel, push_to_hub

    folder = Path(model_folder)
    spec = load_spec_file(folder / f"{name}.yaml")
    commit = push_to_hub(ExportedModel(folder, spec, folder / spec.weights.filename), args.push_to_hub,
                         token, private=not args.public, settings=None if args.no_install else settings)
    print(f"pushed to https://huggingface.co/{args.push_to_hub} (commit {commit})")


def add_init_arguments(p) -> None:
    """``--init``, ``--freeze-epochs``, ``--backbone-lr-scale``, ``--precision`` (both trainers)."""
    from wildspace.train.finetune import PRECISIONS

    p.add_argument("--init", default="auto", help=INIT_HELP)
    p.add_argument("--freeze-epochs", type=int, default=0, help="train only the new layers for this many "
                   "epochs first (pretrained backbone frozen)")
    p.add_argument("--backbone-lr-scale", type=float, default=0.1, help="pretrained layers learn at "
                   "lr x this (default 0.1; new layers at lr)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 autocast on AMX/AVX-512 "
                   "BF16 CPUs and bf16/fp16 on CUDA GPUs, else fp32")


def default_arch(arch: str | None, init: str | None, settings, fallback: str = "resnet18") -> str:
    """``--arch``/``--backbone`` when given, else the architecture of the ``--init`` model."""
    if arch:
        return arch
    from wildspace.hub.specs import SpecRegistry
    from wildspace.train.init import spec_arch

    return spec_arch(init, SpecRegistry(settings.spec_dirs)) or fallback
