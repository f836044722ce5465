"""Fine-tuning settings shared by classifier and re-ID training.

- **Learning rates**: the tensors that came from pretrained weights (the backbone) learn at
  ``lr * backbone_lr_scale``; the new ones (a classifier head, a SimCLR projection head) at
  ``lr``. From random weights everything learns at ``lr``.
- **Frozen warm-up**: for the first ``freeze_epochs`` epochs only the new layers learn (the
  backbone's parameters get no gradient), so a random head does not wreck good features.
- **Precision**: ``fp32``; ``bf16`` (autocast: matrix products in bfloat16, weights and
  optimizer in fp32); ``auto``: bf16 on a CPU with bf16 matrix instructions (AMX or
  AVX-512 BF16) and on a CUDA GPU that supports it, fp16 autocast with a gradient scaler on
  older GPUs, fp32 otherwise. Training runs on the GPU when one is visible.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from wildspace.errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device() -> str:
    """``cuda`` when a GPU is visible to torch, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """``fp32``, ``bf16`` or ``fp16`` (CUDA only) for ``precision`` on ``device``.

    Raises:
        ValueError: an unknown choice (naming the valid ones).
    """
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    from wildspace.detect.cpu import has_fast_bf16

    return "bf16" if has_fast_bf16() else "fp32"


class Precision:
    """``autocast()`` context for the forward pass and ``step(loss, opt)`` for the update
    (with a gradient scaler for fp16)."""

    def __init__(self, precision: str, device: str):
        import torch

        self.device = device
        self.name = resolve_precision(precision, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.name == "fp16" else None

    def autocast(self):
        import torch

        if self.name == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.name == "bf16" else torch.float16
        return torch.autocast(device_type=self.device, dtype=dtype)

    def step(self, loss, opt) -> None:
        if self.scaler is None:
            loss.backward()
            opt.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()


def param_groups(modules: dict, pretrained: set[str], lr: float, backbone_lr_scale: float) -> list[dict]:
    """AdamW parameter groups: pretrained tensors at ``lr * backbone_lr_scale``, the rest at ``lr``.

    Args:
        modules: ``{prefix: module}``; parameter names are ``prefix + name`` (prefix ``""``
            for the network itself, e.g. ``"head."`` for a separate projection head).
        pretrained: the names loaded from the initial weights.
    """
    backbone: list[torch.nn.Parameter] = []
    new: list[torch.nn.Parameter] = []
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            (backbone if prefix + name in pretrained else new).append(p)
    if not backbone or not new:  # random init, or nothing new: one rate for all
        return [{"params": backbone + new, "lr": lr, "name": "all"}]
    return [{"params": backbone, "lr": lr * backbone_lr_scale, "name": "backbone"},
            {"params": new, "lr": lr, "name": "head"}]


def set_backbone_frozen(net, pretrained: set[str], frozen: bool) -> None:
    """Stop (or restart) gradients for the pretrained parameters of ``net``."""
    for name, p in net.named_parameters():
        if name in pretrained:
            p.requires_grad_(not frozen)


def check_finetune(freeze_epochs: int, backbone_lr_scale: float, precision: str) -> None:
    """Raise ``ValueError`` naming the bad setting."""
    if int(freeze_epochs) < 0:
        raise UsageError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
    if not 0 < float(backbone_lr_scale) <= 10:
        raise UsageError(f"backbone_lr_scale must be in (0, 10], got {backbone_lr_scale}")
    if precision not in PRECISIONS:
        raise UsageError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
