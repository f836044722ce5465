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
``WILDSPACE_MAX_VIDEO_SECONDS`` request limits (see :mod:`wildspace.limits`).
``SPACE_ID``         set by Hugging Face on a Space: the app is public (uploads only, logins).
``WILDSPACE_ALLOW_CUSTOM_WEIGHTS`` when ``1``, the app accepts uploaded model weights even on
                     a public Space (off there by default; always on locally).
``WILDSPACE_ALLOW_TRAINING`` when ``1``, logged-in visitors of a public Space may train models
                     (off there by default; always on locally).
``WILDSPACE_WORK_DIR`` the one folder for the app's uploads, runs, exports and Gradio's cache
                     (default ``$TMPDIR/wildspace-app``); bounded by the guards.
Fair-use guards (per-visitor requests, disk budget, expiry): see :mod:`wildspace.guards`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import tempfile

from wildspace.guards import Guards
from wildspace.limits import Limits

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_SPECS_DIR = REPO_ROOT / "models"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path
    spec_dirs: tuple[Path, ...]
    offline: bool
    max_pixels: int
    hf_cache: Path | None = None
    backend: str = "auto"
    precision: str = "auto"
    fast_decode: bool = False
    threads: int | None = None  # None: every available core (wildspace.detect.cpu)
    limits: Limits = Limits()  # its max_pixels always equals ``max_pixels``
    public_space: bool = False  # running on a Hugging Face Space (``SPACE_ID``)
    allow_custom_weights: bool = True  # uploads of model weights in the app
    allow_training: bool = True  # training from the app (on a Space: also needs a HF login)
    guards: Guards = Guards()  # fair use: per-visitor requests, disk budget, expiry
    work_dir: Path = Path(tempfile.gettempdir()) / "wildspace-app"  # uploads, runs, Gradio cache

    def __post_init__(self) -> None:
        if self.limits.max_pixels != self.max_pixels:
            object.__setattr__(self, "limits", replace(self.limits, max_pixels=self.max_pixels))

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


def load_settings() -> Settings:
    """Read the settings from the environment (call once, pass the result on)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    default_home = Path(xdg) / "wildspace" if xdg else Path.home() / ".cache" / "wildspace"
    home = Path(os.environ.get("WILDSPACE_HOME") or default_home).expanduser()
    dirs = [BUILTIN_SPECS_DIR]
    extra = os.environ.get("WILDSPACE_MODELS")
    if extra:
        dirs.append(Path(extra).expanduser())
    dirs.append(home / "specs")
    limits = Limits.from_env()
    public = bool(os.environ.get("SPACE_ID"))
    return Settings(
        home=home,
        spec_dirs=tuple(dirs),
        offline=_truthy(os.environ.get("HF_HUB_OFFLINE")),
        max_pixels=limits.max_pixels,
        hf_cache=_hf_cache_dir(),
        backend=(os.environ.get("WILDSPACE_BACKEND") or "auto").strip().lower(),
        precision=(os.environ.get("WILDSPACE_PRECISION") or "auto").strip().lower(),
        fast_decode=_truthy(os.environ.get("WILDSPACE_FAST_DECODE")),
        threads=_positive_or_none("WILDSPACE_THREADS"),
        limits=limits,
        public_space=public,
        allow_custom_weights=not public or _truthy(os.environ.get("WILDSPACE_ALLOW_CUSTOM_WEIGHTS")),
        allow_training=not public or _truthy(os.environ.get("WILDSPACE_ALLOW_TRAINING")),
        guards=Guards.from_env(public=public),
        work_dir=Path(os.environ.get("WILDSPACE_WORK_DIR")
                      or Path(tempfile.gettempdir()) / "wildspace-app").expanduser(),
    )


def _positive_or_none(var: str) -> int | None:
    text = (os.environ.get(var) or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{var} must be a positive integer, got {text!r}")
    return int(text)


def _hf_cache_dir() -> Path | None:
    """The Hub cache huggingface_hub would use, read now (not at its import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None
