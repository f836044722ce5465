"""Tiny random-weight timm backbones published the way timm publishes on the Hub
(``model.safetensors`` + ``config.json`` at one commit), seeded into a local Hugging Face cache,
with a ``task: backbone`` spec pinning that commit and the file's sha256."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.factories import seed_hub_cache, sha256

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]  # not ImageNet's: tests see which normalisation is used


def make_timm_repo_files(folder: Path, arch: str = "test_resnet", num_classes: int = 1000, seed: int = 7,
                         config_arch: str | None = None) -> tuple[Path, Path]:
    """``(model.safetensors, config.json)`` of a random ``arch`` (a full classifier, as timm
    uploads them: the ImageNet head included)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    config = folder / "config.json"
    config.write_text(json.dumps({
        "architecture": config_arch or arch, "num_classes": num_classes, "num_features": net.num_features,
        "pretrained_cfg": {"tag": "tiny_in1k", "input_size": [3, 32, 32], "interpolation": "bicubic",
                           "crop_pct": 0.95, "mean": MEAN, "std": STD, "num_classes": num_classes,
                           "classifier": "fc"}}, indent=2))
    return weights, config


def seed_backbone(hub_cache: Path, specs_dir: Path, tmp: Path, name: str = "tiny-imagenet",
                  arch: str = "test_resnet", repo_id: str = "timm/test_resnet.tiny_in1k",
                  pretrained: str = "imagenet", seed_cache: bool = True, config_arch: str | None = None,
                  fixed_size: int | None = None) -> dict:
    """Publish a tiny backbone in ``hub_cache`` and write its spec; returns paths and the revision."""
    weights, config = make_timm_repo_files(tmp / f"upload-{name}", arch, config_arch=config_arch)
    rev = "0123456789abcdef0123456789abcdef" + sha256(weights)[:8]
    if seed_cache:
        seed_hub_cache(hub_cache, repo_id, "model.safetensors", weights, revision=rev)
        seed_hub_cache(hub_cache, repo_id, "config.json", config, revision=rev)
    spec = {"name": name, "task": "backbone", "family": "timm", "version": "test", "arch": arch,
            "pretrained": pretrained,
            "weights": {"filename": "model.safetensors", "sha256": sha256(weights),
                        "hub": {"repo_id": repo_id, "revision": rev, "path_in_repo": "model.safetensors"}},
            "input_size": fixed_size or 32, "labels": [],
            "preprocessing": {"mean": MEAN, "std": STD, "input_size": fixed_size or 32, "interpolation": "bicubic",
                              "fixed_input_size": bool(fixed_size)},
            "license": "apache-2.0", "card": f"tiny random {arch} published like a timm ImageNet backbone"}
    specs_dir.mkdir(parents=True, exist_ok=True)
    (specs_dir / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return {"weights": weights, "config": config, "revision": rev, "repo_id": repo_id, "name": name}
