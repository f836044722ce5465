"""Refuse hostile pickles before anything in them can run.

PyTorch ``.pt`` checkpoints are zip files holding a pickle (``*/data.pkl``) plus raw tensor
storages. A pickle can name any Python callable (``os.system``, ``builtins.eval`` …) and call
it while loading. :func:`checkpoint_globals` reads the pickle with an unpickler that resolves
*nothing*: every global it names becomes an inert stub and is recorded. Loaders then compare
the recorded names with an explicit allowlist and refuse the file, naming the offending global,
before any real unpickling happens.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Iterable

from wildspace.errors import WildspaceError


class UnsafeCheckpoint(WildspaceError, ValueError):
    """A checkpoint names code outside the allowlist (or is not a readable checkpoint)."""


class _Stub:
    """Stands in for every global while scanning; accepts any call and any state."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass


class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.names: set[str] = set()

    def find_class(self, module: str, name: str):
        self.names.add(f"{module}.{name}")
        return type(name, (_Stub,), {})

    def persistent_load(self, pid):
        return None


def _pickle_bytes(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as z:
            pkls = [n for n in z.namelist() if n.endswith("data.pkl")]
            if len(pkls) != 1:
                raise UnsafeCheckpoint(f"{path.name}: not a PyTorch checkpoint (expected one "
                                       f"data.pkl in the zip, found {len(pkls)})")
            return z.read(pkls[0])
    except zipfile.BadZipFile:
        raise UnsafeCheckpoint(
            f"{path.name}: not a zip-format PyTorch checkpoint (legacy pre-1.6 torch files and "
            "raw pickles are refused; re-save it with a current torch)") from None


def checkpoint_globals(path: str | Path) -> set[str]:
    """Every ``module.name`` global the checkpoint's pickle refers to, without running any."""
    data = _pickle_bytes(Path(path))
    unpickler = _RecordingUnpickler(data)
    try:
        unpickler.load()
    except UnsafeCheckpoint:
        raise
    except Exception as exc:  # malformed pickle: refuse, don't guess
        raise UnsafeCheckpoint(f"{Path(path).name}: unreadable pickle ({type(exc).__name__}: "
                               f"{exc})") from None
    return _normalise(unpickler.names)


def _normalise(names: Iterable[str]) -> set[str]:
    # Protocol-2 pickles written by Python 3 name builtins "__builtin__".
    return {n.replace("__builtin__.", "builtins.", 1) if n.startswith("__builtin__.") else n
            for n in names}


# Data-only globals a torch checkpoint may legitimately reference.
TORCH_DATA_GLOBALS = frozenset({
    "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.dict",
    "builtins.list", "builtins.tuple", "builtins.slice", "builtins.complex",
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2",
    "torch.Size", "torch.device",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.ndarray", "numpy.dtype",
})
_STORAGES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
             "Bool", "Untyped")
TORCH_DATA_GLOBALS |= {f"torch.{s}Storage" for s in _STORAGES}
TORCH_DATA_GLOBALS |= {f"torch.{d}" for d in ("float16", "float32", "float64", "bfloat16",
                                              "int64", "int32", "uint8", "bool")}


def is_data_global(name: str) -> bool:
    return name in TORCH_DATA_GLOBALS or name.startswith("numpy.dtypes.")


def check_globals(path: str | Path, allowed) -> set[str]:
    """Scan ``path`` and refuse it unless every global satisfies ``allowed(name)``.

    Returns the set of globals (for loaders that need to map them).

    Raises:
        UnsafeCheckpoint: naming the first disallowed globals.
    """
    names = checkpoint_globals(path)
    bad = sorted(n for n in names if not (is_data_global(n) or allowed(n)))
    if bad:
        shown = ", ".join(bad[:5]) + (" …" if len(bad) > 5 else "")
        raise UnsafeCheckpoint(f"{Path(path).name}: refused, the checkpoint references code "
                               f"outside the allowlist: {shown}")
    return names
