"""Read a classifier's tensors from a local, already verified weight file.

``.safetensors`` files hold tensors only and are read directly. PyTorch pickles (``.pt``,
``.pth``, ``.ckpt``) are scanned first (:mod:`wildspace.hub.safe_pickle`): tensor data may
appear, and so may the bookkeeping objects training frameworks put next to the weights
(PyTorch Lightning's hyper-parameter dicts, OmegaConf configs, argparse namespaces). Those are
never imported: each is mapped onto an inert stand-in (a plain ``dict`` or an empty object)
and the file is loaded with PyTorch's restricted ``weights_only`` unpickler. Any other global
(a pickled ``nn.Module``, ``os.system`` …) makes the file refused before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from wildspace.errors import UsageError
from wildspace.hub.safe_pickle import UnsafeCheckpoint, check_globals

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# Training-framework metadata that may sit beside the weights; stubbed, never imported.
METADATA_PREFIXES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.",
                     "argparse.Namespace", "pathlib.PosixPath", "pathlib.WindowsPath",
                     "torch.optim.lr_scheduler.", "typing.")
_DICT_LIKE = ("AttributeDict",)
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


class _Inert:
    """Stands in for a metadata object: accepts any construction and state, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def read_tensors(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """The ``name -> tensor`` mapping stored in ``path``.

    Args:
        key: where the mapping sits inside a pickled checkpoint (e.g. ``state_dict`` for
            PyTorch Lightning files); found automatically when not given.

    Raises:
        UnsafeCheckpoint: the pickle names code outside the allowlist, or holds no tensors.
        ValueError: an unsupported file type.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError) as exc:
            raise UnsafeCheckpoint(f"{path.name}: not a readable safetensors file ({exc})") from None
    if suffix not in PICKLE_SUFFIXES:
        raise UsageError(f"{path.name}: unsupported weight file type '{suffix}'; use .safetensors "
                         f"(preferred) or one of {', '.join(PICKLE_SUFFIXES)}")
    return _state_dict_of(_load_pickle(path), key, path.name)


def _load_pickle(path: Path) -> Any:
    import torch

    names = check_globals(path, lambda n: n.startswith(METADATA_PREFIXES))
    mapping: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = []
    for n in sorted(names):
        if n.startswith(METADATA_PREFIXES):
            short = n.rsplit(".", 1)[-1]
            mapping.append((dict if short in _DICT_LIKE else type(short, (_Inert,), {}), n))
    try:
        with torch.serialization.safe_globals(mapping):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler refused something the scan let through
        raise UnsafeCheckpoint(f"{path.name}: refused by the restricted loader "
                               f"({type(exc).__name__}: {str(exc)[-200:]})") from None


def _is_tensor_map(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _state_dict_of(ckpt: Any, key: str | None, name: str) -> dict[str, Any]:
    if key is not None:
        if not isinstance(ckpt, Mapping) or key not in ckpt:
            found = ", ".join(map(str, ckpt)) if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise UnsafeCheckpoint(f"{name}: no '{key}' entry in the checkpoint (found: {found})")
        ckpt = ckpt[key]
    elif not _is_tensor_map(ckpt) and isinstance(ckpt, Mapping):
        ckpt = next((ckpt[k] for k in _STATE_KEYS if _is_tensor_map(ckpt.get(k))), ckpt)
    if not _is_tensor_map(ckpt):
        raise UnsafeCheckpoint(f"{name}: no state dict (a mapping of tensors) found; save "
                               "model.state_dict() with safetensors or torch.save")
    return dict(ckpt)


def rename_keys(state: Mapping[str, Any], key_map: Mapping[str, str]) -> dict[str, Any]:
    """Replace key prefixes: ``{"net.feature.": "", "net.classifier.": "fc."}`` turns
    ``net.classifier.weight`` into ``fc.weight``. The first matching prefix wins."""
    out = {}
    for k, v in state.items():
        for old, new in key_map.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out
