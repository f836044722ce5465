"""Tiny random-weight classifiers of the real architectures (timm, torchvision), saved in the
real formats (safetensors, or a PyTorch Lightning-style ``.ckpt`` as Pytorch-Wildlife
publishes), placed in a local Hub cache and described by a spec, so the production store and
loader run without network."""

from __future__ import annotations

import collections
import sys
import types
from pathlib import Path

from tests.factories import seed_hub_cache, sha256, write_spec

SERENGETI = ["wildebeest", "guineafowl", "zebra", "buffalo", "gazellethomsons"]


def make_classifier_file(path: Path, family: str, arch: str, n_outputs: int, seed: int = 0,
                         prefix_map: dict[str, str] | None = None, lightning: bool = False) -> Path:
    """Save a random ``arch`` network: ``.safetensors`` as is, or a ``.ckpt`` whose
    ``state_dict`` keys are renamed by ``prefix_map`` (``{"fc.": "net.classifier.", "": "net.feature."}``
    style: first matching prefix wins) and that carries a Lightning hyper-parameter dict."""
    import torch

    from wildspace.classify.models import create_network, save_classifier_weights

    torch.manual_seed(seed)
    net = create_network(family, arch, n_outputs)
    path = Path(path)
    if path.suffix == ".safetensors":
        return save_classifier_weights(net, path)
    state = collections.OrderedDict()
    for k, v in net.state_dict().items():
        for old, new in (prefix_map or {}).items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        state[k] = v
    ckpt = {"epoch": 7, "global_step": 70, "state_dict": state}
    if lightning:
        ckpt["hyper_parameters"] = _lightning_hparams(num_layers=18, lr=0.01)
        ckpt["pytorch-lightning_version"] = "1.9.0"
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_with_fake_modules(ckpt, path)
    return path


def _lightning_hparams(**kw):
    """A dict subclass pickled as ``pytorch_lightning.utilities.parsing.AttributeDict``."""
    cls = type("AttributeDict", (dict,), {"__module__": "pytorch_lightning.utilities.parsing"})
    return cls(**kw)


def _save_with_fake_modules(obj, path: Path) -> None:
    import torch

    names = ("pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.utilities.parsing")
    previous = {n: sys.modules.get(n) for n in names}
    try:
        for n in names:
            sys.modules[n] = types.ModuleType(n)
        hp = obj.get("hyper_parameters")
        if hp is not None:
            sys.modules["pytorch_lightning.utilities.parsing"].AttributeDict = type(hp)
        torch.save(obj, path)
    finally:
        for n, old in previous.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


def install_classifier(specs_dir: Path, hub_cache: Path, name: str, family: str, arch: str,
                       labels, input_size: int, seed: int = 0, kind: str = "species",
                       filename: str | None = None, thresholds: dict | None = None, **extra) -> Path:
    """Build, seed into the Hub cache and describe a classifier; returns the weight file."""
    filename = filename or f"{name}.safetensors"
    n_out = extra.get("num_outputs", len(labels))
    src = make_classifier_file(hub_cache.parent / "built" / filename, family, arch, n_out, seed=seed,
                               prefix_map=extra.pop("_prefix_map", None), lightning=extra.pop("_lightning", False))
    repo = f"test-org/{name}"
    rev = seed_hub_cache(hub_cache, repo, filename, src)
    write_spec(specs_dir, name, family, filename, sha256(src),
               hub={"repo_id": repo, "revision": rev}, labels=labels, input_size=input_size,
               task="classify", arch=arch, kind=kind,
               thresholds=thresholds or {"typical": 0.5, "conservative": 0.3}, **extra)
    return src
