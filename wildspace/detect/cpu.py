"""The CPU the detectors run on: how many threads they use, what arithmetic it is built for,
and a fingerprint that says when a speed measurement made on it is out of date.

The thread count is the project's decision (``WILDSPACE_THREADS``, default: every core this
process may run on), applied to PyTorch after a model is loaded and to every ONNX Runtime
session. Libraries otherwise choose for us: ultralytics' ``select_device('cpu')`` sets
``torch.set_num_threads(min(8, cores - 1))``, i.e. one thread on a 2-core machine.

Nothing here imports PyTorch or ONNX Runtime (versions are read from the installed
packages' metadata), so the torch-free exported path stays torch-free.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from wildspace.errors import UsageError

# flags that decide which arithmetic is fast (bf16 / int8 matrix units and dot products)
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
               "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "bf16", "i8mm")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None = None) -> int:
    """The thread count to use: ``threads`` when given, else ``WILDSPACE_THREADS``, else
    :func:`available_cores`.

    Raises:
        ValueError: a count below 1.
    """
    if threads is None:
        from wildspace.settings import load_settings

        threads = load_settings().threads
    if threads is None:
        return available_cores()
    if int(threads) < 1:
        raise UsageError(f"thread count must be at least 1, got {threads}")
    return int(threads)


def set_torch_threads(threads: int) -> None:
    """Make PyTorch's intra-op pool ``threads`` wide (after any library that changed it)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model = ""
    flags: frozenset[str] = frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "CPU part") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    if not model:
        import platform

        model = platform.processor() or platform.machine()
    return model, flags


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's name elsewhere)."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    return _cpuinfo()[1]


def has_fast_bf16() -> bool:
    """Whether the CPU has bf16 matrix instructions oneDNN uses (AMX or AVX-512 BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def has_fast_int8() -> bool:
    """Whether the CPU has int8 dot-product instructions (AMX, AVX-512 VNNI or AVX-VNNI)."""
    return bool({"amx_int8", "avx512_vnni", "avx_vnni"} & cpu_flags())


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return ""


def machine_fingerprint(threads: int) -> dict:
    """What a speed measurement depends on: CPU model and speed-relevant flags, cores, the
    thread count and the torch / onnxruntime versions. A saved figure whose fingerprint
    differs from today's was measured somewhere else and is measured again."""
    flags = sorted(f for f in cpu_flags() if f in SPEED_FLAGS)
    return {"cpu": cpu_model(), "flags": hashlib.sha1(" ".join(flags).encode()).hexdigest()[:12],
            "cores": available_cores(), "threads": int(threads), "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime")}


def openvino_available() -> bool:
    """Whether the ``openvino`` package (the bf16 runtime) can be imported, without importing it."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None
