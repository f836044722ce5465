from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wildspace.train.losses import make_loss


def test_focal_and_asymmetric_reduce_to_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    ce = F.cross_entropy(logits, y)
    assert make_loss("focal", 3, gamma=0.0)(logits, y) == pytest.approx(float(ce), rel=1e-5)
    asl = make_loss("asymmetric-focal", 3, gamma_pos=0.0, gamma_neg=0.0, smoothing=0.0)
    assert asl(logits, y) == pytest.approx(float(ce), rel=1e-5)


def test_focal_down_weights_easy_examples():
    easy = torch.tensor([[5.0, -5.0]])
    hard = torch.tensor([[0.2, 0.0]])
    y = torch.tensor([0])
    ce, fl = make_loss("ce", 2), make_loss("focal", 2, gamma=2.0)
    assert fl(easy, y) / ce(easy, y) < fl(hard, y) / ce(hard, y) < 1


def test_class_weights_and_errors():
    logits, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    w = make_loss("focal", 2, class_weights=[1.0, 0.0], gamma=0.0)
    assert w(logits, y) == pytest.approx(float(F.cross_entropy(logits[:1], y[:1])), rel=1e-5)
    with pytest.raises(ValueError, match="ce, focal, asymmetric-focal"):
        make_loss("hinge", 2)
    with pytest.raises(ValueError, match="3 class weights for 2 classes"):
        make_loss("ce", 2, class_weights=[1, 1, 1])
