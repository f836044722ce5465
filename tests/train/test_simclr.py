"""SimCLR (train reid --loss ntxent): the loss against a hand computation, unlabeled folders,
and a short real run on ../shared/data snow-leopard crops whose embedder builds a gallery."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wildspace.settings import load_settings


def _hand_ntxent(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    """NT-Xent written out: views 0..N-1 and N..2N-1; view i's positive is its partner; its
    denominator sums over every other view; the loss is the mean over all 2N views."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        partner = (i + n) % n2
        sims = [float(z[i] @ z[k]) / t for k in range(n2)]
        denom = sum(math.exp(sims[k]) for k in range(n2) if k != i)
        total += -math.log(math.exp(sims[partner]) / denom)
    return total / n2


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_ntxent_equals_the_hand_computed_loss(t):
    import torch

    from wildspace.train.simclr import ntxent_loss

    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    got = float(ntxent_loss(torch.tensor(z1, dtype=torch.float64), torch.tensor(z2, dtype=torch.float64), t))
    assert got == pytest.approx(_hand_ntxent(z1, z2, t), rel=1e-9)
    same = float(ntxent_loss(torch.tensor(z1), torch.tensor(z1), t))  # identical views: only negatives hurt
    assert same < got


def test_simclr_batches_use_every_crop_once_and_drop_a_lonely_one():
    import random

    from wildspace.train.reid import simclr_batches

    b = simclr_batches(9, 4, random.Random(0))
    assert [len(x) for x in b] == [4, 4] and len(set(sum(b, []))) == 8
    assert sorted(sum(simclr_batches(10, 4, random.Random(0)), [])) == list(range(10))


def test_two_views_differ_and_use_the_given_normalisation():
    import torch

    from wildspace.train.simclr import TwoViews

    rng = np.random.default_rng(0)
    img = (rng.random((50, 70, 3)) * 255).astype(np.uint8)
    torch.manual_seed(0)
    a, b = TwoViews([img, img], 24, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).views([0, 1])
    assert a.shape == b.shape == (2, 3, 24, 24) and not torch.equal(a, b)
    assert a.min() >= -1.0 - 1e-6 and a.max() <= 1.0 + 1e-6  # (x - 0.5) / 0.5 of [0, 1]


def test_unlabeled_folder_cli_run_exports_an_embedder_without_the_head(tmp_path, capsys):
    from PIL import Image

    from wildspace.cli import main
    from wildspace.hub.specs import load_spec_file
    from wildspace.reid.embedders import load_embedder

    rng = np.random.default_rng(1)
    (tmp_path / "crops" / "sub").mkdir(parents=True)
    for i in range(10):
        img = np.clip(rng.normal(128, 60, (40, 44, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / "crops" / ("sub" if i % 2 else "") / f"{i}.png")
    (tmp_path / "crops" / "broken.jpg").write_bytes(b"not a jpeg")
    rc = main(["train", "reid", "--data", str(tmp_path / "crops"), "--loss", "ntxent", "--name", "ssl-tiny",
               "--backbone", "test_resnet", "--init", "none", "--epochs", "2", "--input-size", "32",
               "--batch-size", "4", "--output", str(tmp_path / "run")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "10 unlabeled images" in out.out and "epoch 2/2" in out.err
    spec = load_spec_file(tmp_path / "run" / "model" / "ssl-tiny.yaml")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "model" / spec.weights.filename))
    assert not any(k.startswith("head.") for k in saved)  # the projection head is dropped
    import torch

    ck = torch.load(tmp_path / "run" / "reid-checkpoint.pt", weights_only=True)
    assert set(saved) == set(ck["model"])  # exactly the backbone
    assert any(v.ndim and v.shape[0] == 128 for v in ck["head"].values())  # the 128-d projection head, kept for resume only
    emb = load_embedder("ssl-tiny")
    v = emb.embed([np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 200, np.uint8)])
    assert v.shape[0] == 2 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert "SimCLR" in (tmp_path / "run" / "model" / "README.md").read_text()
    assert main(["train", "reid", "--data", str(tmp_path / "crops"), "--loss", "triplet", "--backbone",
                 "test_resnet", "--init", "none"]) == 1
    assert "only ntxent trains on unlabeled images" in capsys.readouterr().err


@pytest.mark.slow
def test_short_simclr_run_on_snow_leopards_lowers_the_loss_and_builds_a_gallery(shared_data, tmp_path, capsys):
    from wildspace.cli import main
    from wildspace.train.reid import ReidConfig
    from wildspace.train.reid_run import run_reid

    data = shared_data / "reid" / "snow-leopard-dev"
    config = ReidConfig(images=str(data), identities=str(data / "identities.csv"), out_dir=str(tmp_path / "run"),
                        name="snow-ssl", backbone="test_resnet", loss="ntxent", epochs=6, input_size=48,
                        batch_size=16, lr=2e-3, temperature=0.5, init="none", precision="fp32")
    s = run_reid(config, load_settings())
    losses = [h["loss"] for h in s["history"]]
    assert s["state"] == "done" and len(losses) == 6
    assert min(losses[-2:]) < losses[0]  # the views of one crop become easier to pair up
    assert s["test"]["queries"] > 0 and s["knn"]["cv_accuracy"] is not None  # labels only for head + metrics
    rc = main(["gallery", "build", "--images", str(data), "--identities", str(data / "identities.csv"),
               "--out", str(tmp_path / "g"), "--model", "snow-ssl", "--no-local"])
    assert rc == 0, capsys.readouterr().err
    assert "methods embed" in capsys.readouterr().out
    q = next(p for p in sorted(data.glob("*.JPG")))
    assert main(["gallery", "lookup", str(tmp_path / "g"), str(q), "--json", "--method", "embed"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "embed" and doc["matches"] and doc["verdict"] in ("known", "new")
