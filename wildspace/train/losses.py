"""Classification losses: cross-entropy, focal and asymmetric focal (all on softmax outputs).

- ``ce``: cross-entropy, optional per-class weights.
- ``focal`` (Lin et al. 2017): ``-w_y (1 - p_y)^gamma log p_y``; easy examples count less.
- ``asymmetric-focal`` (Ridnik et al. 2021, single-label form, as the IWT products seed
  project used): the log-probabilities are weighted by ``(1 - p)^gamma_pos`` for the true
  class and ``p^gamma_neg`` for the others, against label-smoothed targets, so confident
  negatives are down-weighted more than positives.

All return the mean loss over the batch. The trained network keeps a softmax output, so
the exported spec is an ordinary classifier whichever loss trained it.
"""

from __future__ import annotations

from typing import Sequence

from wildspace.errors import UsageError

LOSSES = ("ce", "focal", "asymmetric-focal")


def make_loss(name: str, n_classes: int, class_weights: Sequence[float] | None = None,
              gamma: float = 2.0, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
              smoothing: float = 0.1):
    """The loss module ``name`` (one of :data:`LOSSES`).

    Raises:
        ValueError: unknown name (with the valid choices) or a weight list of the wrong length.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    if name not in LOSSES:
        raise UsageError(f"loss '{name}' is not one of {', '.join(LOSSES)}")
    weight = None
    if class_weights is not None:
        if len(class_weights) != n_classes:
            raise UsageError(f"{len(class_weights)} class weights for {n_classes} classes")
        weight = torch.tensor(list(class_weights), dtype=torch.float32)

    if name == "ce":
        return nn.CrossEntropyLoss(weight=weight)

    class FocalLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("weight", weight if weight is not None else torch.ones(n_classes))

        def forward(self, logits, target):
            logp = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
            w = self.weight[target]
            return (-w * (1 - logp.exp()).pow(gamma) * logp).sum() / w.sum().clamp_min(1e-12)

    class AsymmetricFocalLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("weight", weight if weight is not None else torch.ones(n_classes))

        def forward(self, logits, target):
            logp = F.log_softmax(logits, dim=1)
            p = logp.exp()
            pos = F.one_hot(target, n_classes).to(logp.dtype)
            neg = 1 - pos
            base = 1 - p * pos - (1 - p) * neg  # 1 - p for the true class, p for the others
            focus = base.pow(gamma_pos * pos + gamma_neg * neg)
            soft = pos * (1 - smoothing) + smoothing / n_classes
            per = -(soft * logp * focus).sum(dim=1)
            w = self.weight[target]
            return (w * per).sum() / w.sum().clamp_min(1e-12)

    return FocalLoss() if name == "focal" else AsymmetricFocalLoss()
