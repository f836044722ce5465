"""Settings read once from the environment.

``WILDSPACE_HOME``   data dir (imported models, recorded hashes, user specs);
                     default ``$XDG_CACHE_HOME/wildspace`` or ``~/.cache/wildspace``.
``WILDSPACE_MODELS`` extra folder of model spec files (YAML), searched after ``models/``.
``WILDSPACE_MAX_PIXELS`` largest image accepted, in pixels (default 200 megapixels).
``HF_HOME`` / ``HF_HUB_CACHE`` the Hugging Face cache used for Hub-hosted weights.
``HF_HUB_OFFLINE``   when ``1``, nothing is downloaded; missing models are an error.
``WILDSPACE_BACKEND`` inference backend for the CLI, app and workers: ``auto`` (default:
                     ONNX Runtime on CPU unless measured slower here), ``torch`` or ``onnx``.
``WILDSPACE_PRECISION`` CPU arithmetic: ``auto`` (default: a reduced precision only where it
                     passed parity for the model's family), ``fp32`` or ``bf16``.
``WILDSPACE_THREADS`` CPU threads for the detector networks (PyTorch and ONNX Runtime);
                     default: every core this process may use.
``WILDSPACE_FAST_DECODE`` when ``1``, big JPEGs are decoded at reduced size (see
                     :func:`wildspace.media.images.load_image_sized`).
``WILDSPACE_MAX_UPLOAD_MB``, ``WILDSPACE_MAX_FILE_MB``, ``WILDSPACE_MAX_FILES``,
``WILDSPACE_MAX_VIDEO_SECONDS`` request limits (see :mod:`wildspace.settings.limits`).
``SPACE_ID``         set by Hugging Face on a Space: the app is public (uploads only, logins).
``WILDSPACE_ALLOW_CUSTOM_WEIGHTS`` when ``1``, the app accepts uploaded model weights even on
                     a public Space (off there by default; always on locally).
``WILDSPACE_ALLOW_TRAINING`` when ``1``, logged-in visitors of a public Space may train models
                     (off there by default; always on locally).
``WILDSPACE_WORK_DIR`` the one folder for the app's uploads, runs, exports and Gradio's cache
                     (default ``$TMPDIR/wildspace-app``); bounded by the guards.
Fair-use guards (per-visitor requests, disk budget, expiry): see :mod:`wildspace.settings.guards`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from wildspace.errors import UsageError
from wildspace.settings.guards import Guards
from wildspace.settings.limits import Limits

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILTIN_SPECS_DIR = REPO_ROOT / "models"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, parsed once (:func:`load_settings`) and handed down: nothing
    below the front ends (CLI, app, worker) reads the environment."""

    home: Path
    spec_dirs: tuple[Path, ...]
    offline: bool
    hf_cache: Path | None = None
    backend: str = "auto"
    precision: str = "auto"
    fast_decode: bool = False
    threads: int | None = None  # None: every available core (wildspace.detect.cpu)
    limits: Limits = Limits()
    public_space: bool = False  # running on a Hugging Face Space (``SPACE_ID``)
    allow_custom_weights: bool = True  # uploads of model weights in the app
    allow_training: bool = True  # training from the app (on a Space: also needs a HF login)
    guards: Guards = Guards()  # fair use: per-visitor requests, disk budget, expiry
    work_dir: Path = Path(tempfile.gettempdir()) / "wildspace-app"  # uploads, runs, Gradio cache
    queue_url: str | None = None  # ``WILDSPACE_QUEUE``; None: the embedded SQLite queue in ``home``
    storage: Path | None = None  # ``WILDSPACE_STORAGE``; None: ``home/storage``
    lease_ttl: float = 30.0  # ``WILDSPACE_LEASE_TTL``
    queue_above: int = 50  # ``WILDSPACE_QUEUE_ABOVE``: app batches above this go to the workers
    local_worker: bool = False  # ``WILDSPACE_LOCAL_WORKER=1``: the app runs a worker with Redis too
    concurrency: int = 2  # ``WILDSPACE_CONCURRENCY``: app handlers at once
    queue_size: int = 100  # ``WILDSPACE_QUEUE_SIZE``: app requests waiting
    device: str = "cpu"  # ``WILDSPACE_DEVICE``: the app's device
    secret: str | None = None  # ``WILDSPACE_SECRET``: signs browser tokens (else a file in ``home``)
    hf_token: str | None = None  # ``HF_TOKEN``: Hub pushes (galleries, trained models)
    feature_cache: bool = True  # ``WILDSPACE_FEATURE_CACHE=0`` turns the re-ID feature cache off

    @property
    def max_pixels(self) -> int:
        """The pixel limit (one value: :attr:`Limits.max_pixels`)."""
        return self.limits.max_pixels

    @property
    def imported_dir(self) -> Path:
        """Where ``models import`` and URL downloads keep weight files."""
        return self.home / "models"

    @property
    def user_specs_dir(self) -> Path:
        """Specs written by ``models import --as NEW_NAME`` for custom weights."""
        return self.home / "specs"

    @property
    def recorded_hashes(self) -> Path:
        """sha256 recorded on first download for models without a published hash."""
        return self.home / "recorded-sha256.json"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the settings from ``env`` (default: the process environment); call once in a
    front end and pass the result on.

    Raises:
        ValueError: a variable is malformed (the message names it).
    """
    env = os.environ if env is None else env
    xdg = env.get("XDG_CACHE_HOME")
    default_home = Path(xdg) / "wildspace" if xdg else Path.home() / ".cache" / "wildspace"
    home = Path(env.get("WILDSPACE_HOME") or default_home).expanduser()
    dirs = [BUILTIN_SPECS_DIR]
    extra = env.get("WILDSPACE_MODELS")
    if extra:
        dirs.append(Path(extra).expanduser())
    dirs.append(home / "specs")
    public = bool(env.get("SPACE_ID"))
    storage = env.get("WILDSPACE_STORAGE")
    return Settings(
        home=home,
        spec_dirs=tuple(dirs),
        offline=_truthy(env.get("HF_HUB_OFFLINE")),
        hf_cache=_hf_cache_dir(env),
        backend=(env.get("WILDSPACE_BACKEND") or "auto").strip().lower(),
        precision=(env.get("WILDSPACE_PRECISION") or "auto").strip().lower(),
        fast_decode=_truthy(env.get("WILDSPACE_FAST_DECODE")),
        threads=_positive(env, "WILDSPACE_THREADS", None),
        limits=Limits.from_env(env),
        public_space=public,
        allow_custom_weights=not public or _truthy(env.get("WILDSPACE_ALLOW_CUSTOM_WEIGHTS")),
        allow_training=not public or _truthy(env.get("WILDSPACE_ALLOW_TRAINING")),
        guards=Guards.from_env(env, public=public),
        work_dir=Path(env.get("WILDSPACE_WORK_DIR") or Path(tempfile.gettempdir()) / "wildspace-app").expanduser(),
        queue_url=env.get("WILDSPACE_QUEUE") or None,
        storage=Path(storage).expanduser() if storage else None,
        lease_ttl=_positive_float(env, "WILDSPACE_LEASE_TTL", 30.0),
        queue_above=_positive(env, "WILDSPACE_QUEUE_ABOVE", 50) or 50,
        local_worker=_truthy(env.get("WILDSPACE_LOCAL_WORKER")),
        concurrency=_positive(env, "WILDSPACE_CONCURRENCY", 2) or 2,
        queue_size=_positive(env, "WILDSPACE_QUEUE_SIZE", 100) or 100,
        device=(env.get("WILDSPACE_DEVICE") or "cpu").strip(),
        secret=env.get("WILDSPACE_SECRET") or None,
        hf_token=env.get("HF_TOKEN") or None,
        feature_cache=(env.get("WILDSPACE_FEATURE_CACHE") or "1").strip() != "0",
    )


def _positive(env: Mapping[str, str], var: str, default: int | None) -> int | None:
    text = (env.get(var) or "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{var} must be a positive integer, got {text!r}")
    return int(text)


def _positive_float(env: Mapping[str, str], var: str, default: float) -> float:
    text = (env.get(var) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{var} must be a positive number, got {text!r}")
    return value


def _hf_cache_dir(env: Mapping[str, str]) -> Path | None:
    """The Hub cache huggingface_hub would use, read now (not at its import time)."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return None
