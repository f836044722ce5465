"""Tiny random-weight models of the real architectures, saved in the real formats, and a
seeded local Hugging Face cache so the production fetch/load code runs without network."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import yaml

MD_LABELS = ["animal", "person", "vehicle"]


def make_yolov5_checkpoint(path: Path, variant: str = "n6", labels=MD_LABELS, extra=None) -> Path:
    """A random YOLOv5 model pickled as ``models.yolo.Model`` (as MegaDetector v5 files are)."""
    import torch

    from wildspace.detect.yolov5_legacy import save_yolov5_checkpoint
    from wildspace.detect.yolov5_modules import Model, yolov5_config

    torch.manual_seed(0)
    model = Model(yolov5_config(variant, nc=len(labels)))
    model.names = list(labels)
    model.eval()
    save_yolov5_checkpoint(model, path, extra=extra)
    return path


def make_ultralytics_checkpoint(path: Path, cfg: str = "yolov9t.yaml", labels=MD_LABELS) -> Path:
    """A random ultralytics detection model built from a bundled yaml, saved as ultralytics does."""
    import torch
    from ultralytics import RTDETR, YOLO
    from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel

    torch.manual_seed(0)
    rtdetr = cfg.startswith("rtdetr")
    wrapper = (RTDETR if rtdetr else YOLO)(cfg)
    wrapper.model = (RTDETRDetectionModel if rtdetr else DetectionModel)(cfg, nc=len(labels), verbose=False)
    wrapper.model.names = dict(enumerate(labels))
    wrapper.save(str(path))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def seed_hub_cache(hub_cache: Path, repo_id: str, path_in_repo: str, src: Path,
                   repo_type: str = "model", revision: str | None = None) -> str:
    """Place ``src`` in a Hugging Face cache as ``repo_id@revision:path_in_repo``.

    Layout: ``{type}s--org--name/{blobs/<sha256>, snapshots/<rev>/<path>, refs/main}``.
    Returns the 40-hex revision.
    """
    digest = sha256(src)
    revision = revision or hashlib.sha1(f"{repo_id}:{digest}".encode()).hexdigest()
    root = Path(hub_cache) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    blob = root / "blobs" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, blob)
    snap = root / "snapshots" / revision / path_in_repo
    snap.parent.mkdir(parents=True, exist_ok=True)
    if snap.exists() or snap.is_symlink():
        snap.unlink()
    os.symlink(os.path.relpath(blob, snap.parent), snap)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return revision


def write_spec(specs_dir: Path, name: str, family: str, filename: str, sha: str | None,
               hub: dict | None = None, url: str | None = None, labels=MD_LABELS,
               input_size: int = 640, **more) -> Path:
    weights = {"filename": filename, "sha256": sha}
    if sha is None:
        weights["sha256_note"] = "test: none published"
    if hub:
        weights["hub"] = hub
    if url:
        weights["url"] = url
    if not hub and not url:
        weights["local_only"] = True
    data = {"name": name, "task": "detect", "family": family, "version": "test",
            "weights": weights, "input_size": input_size, "labels": list(labels),
            "thresholds": {"typical": 0.2, "conservative": 0.05}, "license": "test",
            "card": f"test model {name}", **more}
    specs_dir.mkdir(parents=True, exist_ok=True)
    p = specs_dir / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def make_malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A torch checkpoint whose pickle runs ``touch marker`` when loaded unsafely."""
    import torch

    torch.save({"model": None, "payload": Evil(marker)}, path)
    return path
