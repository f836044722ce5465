"""Transfer learning: pinned pretrained backbones reached through the production fetch path
(a seeded local Hub cache holding timm-format files), offline errors, the run card, fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.factories import sha256
from tests.train.backbones import MEAN, STD, seed_backbone
from tests.train.conftest import tiny_config
from wildspace.settings import load_settings


@pytest.fixture
def backbone(hub_cache, specs_dir, tmp_path):
    return seed_backbone(hub_cache, specs_dir, tmp_path)


def _net(arch="test_resnet", n=2):
    from wildspace.classify.models import create_network

    return create_network("timm", arch, n)


def test_imagenet_init_loads_the_cached_tensors_through_fetch(backbone, hub_cache):
    from wildspace.train.init import load_init, resolve_init

    init = resolve_init("imagenet", "test_resnet", load_settings())
    assert init.kind == "spec" and init.name == "tiny-imagenet"
    assert str(hub_cache) in init.path and backbone["revision"] in init.path  # the pinned snapshot
    assert init.mean == tuple(MEAN) and init.std == tuple(STD)
    net = _net()
    loaded = load_init(net, init)
    cached = load_file(str(backbone["weights"]))
    own = net.state_dict()
    assert loaded == {k for k in cached if not k.startswith("fc.")}  # the 1000-class head is skipped
    assert all(torch.equal(own[k], cached[k]) for k in loaded)
    assert own["fc.weight"].shape == (2, cached["fc.weight"].shape[1])
    assert resolve_init("auto", "test_resnet", load_settings()).name == "tiny-imagenet"
    assert resolve_init("auto", "test_vit", load_settings()).kind == "random"  # no backbone known
    assert resolve_init("none", "test_resnet", load_settings()).kind == "random"


def test_train_classifier_init_imagenet_cli_states_the_weights(backbone, image_folder, tmp_path, capsys):
    """Through the CLI: the frozen warm-up epoch leaves the pretrained parameters exactly the
    cached ones; the card, spec and report name the weights and their sha256."""
    from wildspace.cli import main
    from wildspace.hub.specs import load_spec_file

    run = tmp_path / "run"
    rc = main(["train", "classifier", "--data", str(image_folder), "--name", "from-imagenet", "--arch",
               "test_resnet", "--init", "imagenet", "--freeze-epochs", "1", "--epochs", "1", "--batch-size", "4",
               "--input-size", "32", "--output", str(run), "--precision", "fp32"])
    assert rc == 0, capsys.readouterr().err
    best = load_file(str(run / "best.safetensors"))
    cached = load_file(str(backbone["weights"]))
    params = {n for n, _ in _net().named_parameters() if not n.startswith("fc.")}
    assert params and all(torch.equal(best[k], cached[k]) for k in params)  # frozen: untouched
    assert not torch.equal(best["fc.weight"][:2], cached["fc.weight"][:2])  # a new head
    card = (run / "model" / "README.md").read_text()
    digest = sha256(backbone["weights"])
    assert f"initial weights: tiny-imagenet from timm/test_resnet.tiny_in1k@{backbone['revision'][:12]}" in card
    assert digest in card and "1 frozen warm-up epoch" in card
    spec = load_spec_file(run / "model" / "from-imagenet.yaml")
    assert spec.extra["mean"] == MEAN and spec.extra["std"] == STD  # the backbone's own normalisation
    assert spec.extra["training"]["initial_weights"]["sha256"] == digest
    assert json.loads((run / "init.json").read_text())["sha256"] == digest


def test_backbone_learns_slower_than_the_head(backbone, image_folder, tmp_path):
    from wildspace.train.classifier import CHECKPOINT, train_classifier

    o = train_classifier(tiny_config(image_folder, tmp_path / "run", epochs=1, init="imagenet",
                                     backbone_lr_scale=0.25, lr=2e-3))
    assert o.state == "done" and o.init.name == "tiny-imagenet"
    ck = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    groups = ck["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert groups[0]["initial_lr"] == pytest.approx(5e-4) and groups[1]["initial_lr"] == pytest.approx(2e-3)
    assert len(groups[1]["params"]) == 2  # fc.weight, fc.bias


def test_resumed_run_keeps_its_initial_weights_record(backbone, image_folder, tmp_path):
    from wildspace.train.classifier import Hooks, train_classifier

    epochs = []
    stop = Hooks(on_epoch=lambda log: epochs.append(log["epoch"]), tick=lambda: len(epochs) >= 1)
    cfg = tiny_config(image_folder, tmp_path / "run", epochs=2, init="imagenet")
    assert train_classifier(cfg, stop).state == "stopped"
    for p in (tmp_path / "hf").rglob("*"):  # the weights disappear from the cache: no matter on resume
        if p.is_file() or p.is_symlink():
            p.unlink()
    o = train_classifier(cfg)
    assert o.state == "done" and o.init.name == "tiny-imagenet" and epochs == [1]


def test_offline_without_the_weights_is_one_line_naming_models_import(specs_dir, hub_cache, image_folder,
                                                                      tmp_path, capsys):
    from wildspace.cli import main

    seed_backbone(hub_cache, specs_dir, tmp_path, seed_cache=False)
    rc = main(["train", "classifier", "--data", str(image_folder), "--arch", "test_resnet", "--init", "imagenet",
               "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err
    assert "python -m wildspace models import FILE --as tiny-imagenet" in err and "--init none" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "init.json").exists()
    # the shipped resnet18 spec: the default (auto) asks for its ImageNet weights
    rc = main(["train", "classifier", "--data", str(image_folder), "--output", str(tmp_path / "r18")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err and "models import FILE --as resnet18-imagenet" in err
    assert "timm/resnet18.a1_in1k" in err


def test_models_import_of_a_backbone_file_then_training_uses_it(specs_dir, hub_cache, image_folder, tmp_path,
                                                                capsys):
    from wildspace.cli import main
    from wildspace.hub.fetch import ModelStore
    from wildspace.hub.specs import SpecRegistry
    from wildspace.train.init import resolve_init

    b = seed_backbone(hub_cache, specs_dir, tmp_path, seed_cache=False)
    bad = tmp_path / "other" / "model.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(b["weights"].read_bytes()[:-1] + b"\0")
    assert main(["models", "import", str(bad), "--as", "tiny-imagenet"]) == 1
    assert "sha256" in capsys.readouterr().err
    assert main(["models", "import", str(b["weights"]), "--as", "tiny-imagenet"]) == 0
    settings = load_settings()
    init = resolve_init("imagenet", "test_resnet", settings)
    spec = SpecRegistry(settings.spec_dirs).get("tiny-imagenet")
    assert init.path == str(ModelStore(settings).imported_path(spec)) and init.sha256 == sha256(b["weights"])


def test_wrong_architecture_and_config_json_are_refused(specs_dir, hub_cache, image_folder, tmp_path):
    from wildspace.train.classifier import train_classifier
    from wildspace.train.init import resolve_init

    seed_backbone(hub_cache, specs_dir, tmp_path, name="lying", repo_id="timm/lying", config_arch="resnet50",
                  pretrained="reid")
    with pytest.raises(ValueError, match="config.json says architecture 'resnet50'"):
        resolve_init("lying", "test_resnet", load_settings())
    seed_backbone(hub_cache, specs_dir, tmp_path / "b", name="tiny-imagenet")
    with pytest.raises(ValueError, match="tensors fit this architecture"):
        train_classifier(tiny_config(image_folder, tmp_path / "r", arch="test_efficientnet", init="tiny-imagenet"))
    with pytest.raises(ValueError, match="no ImageNet backbone is known for 'test_vit'"):
        train_classifier(tiny_config(image_folder, tmp_path / "r2", arch="test_vit", init="imagenet"))


def test_fixed_size_backbone_names_its_input_size(specs_dir, hub_cache, image_folder, tmp_path):
    from wildspace.train.classifier import train_classifier

    seed_backbone(hub_cache, specs_dir, tmp_path, name="fixed", fixed_size=64)
    with pytest.raises(ValueError, match="takes only 64 px input; pass --input-size 64"):
        train_classifier(tiny_config(image_folder, tmp_path / "r", init="fixed"))


def test_precision_choices(image_folder, tmp_path):
    from wildspace.detect.cpu import has_fast_bf16
    from wildspace.train.classifier import train_classifier
    from wildspace.train.finetune import resolve_precision

    assert resolve_precision("auto", "cpu") == ("bf16" if has_fast_bf16() else "fp32")
    o = train_classifier(tiny_config(image_folder, tmp_path / "bf16", epochs=1, precision="bf16", init="none"))
    assert o.state == "done" and o.precision == "bf16" and o.test["samples"] == 4
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        train_classifier(tiny_config(image_folder, tmp_path / "x", precision="fp8"))
    with pytest.raises(ValueError, match="freeze_epochs"):
        train_classifier(tiny_config(image_folder, tmp_path / "x", freeze_epochs=-1))


def test_simclr_from_a_pretrained_backbone_trains_the_projection_head_faster(backbone, tmp_path):
    import numpy as np

    from wildspace.train.reid import ReidConfig, train_embedder

    rng = np.random.default_rng(0)
    images = [np.clip(rng.normal(120, 50, (40, 40, 3)), 0, 255).astype(np.uint8) for _ in range(6)]
    cfg = ReidConfig(images="", identities="", out_dir=str(tmp_path / "run"), backbone="test_resnet",
                     loss="ntxent", epochs=1, input_size=32, batch_size=3, lr=1e-3, init="imagenet",
                     freeze_epochs=1, backbone_lr_scale=0.5, precision="bf16")
    net = train_embedder(cfg, images, None)
    ck = torch.load(tmp_path / "run" / "reid-checkpoint.pt", weights_only=True)
    groups = ck["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert groups[0]["lr"] == pytest.approx(5e-4) and groups[1]["lr"] == pytest.approx(1e-3)
    cached = load_file(str(backbone["weights"]))
    frozen = {n: p for n, p in net.named_parameters()}
    assert all(torch.equal(p, cached[n]) for n, p in frozen.items())  # warm-up: only the head learnt
    assert json.loads((tmp_path / "run" / "init.json").read_text())["name"] == "tiny-imagenet"
