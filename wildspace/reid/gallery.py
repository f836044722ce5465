"""Galleries: identity-labelled images stored as a ``datasets`` dataset, with what search needs.

A gallery version is a folder::

    gallery.json      manifest: name, embedder, dimensions, calibrations, counts
    data/             datasets.Dataset.save_to_disk: image_id, identity, viewpoint, bbox,
                      date, location, file, image (the crop, JPEG bytes)
    embeddings.npy    (n, dim) float32, row i = data row i (when an embedder is used)
    index.faiss       FAISS index over the embeddings
    features.npz      RootSIFT keypoints/descriptors of every image (weight-free matching)

Local galleries keep versions under ``versions/<n>/`` and a ``CURRENT`` file naming the live
one; a write builds a complete new version and then replaces ``CURRENT`` atomically, so a
crash mid-write leaves the previous gallery intact. A gallery pulled from the Hub is one
version folder (read-only snapshot at a pinned revision).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildspace.errors import WildspaceError

FORMAT = "wildspace-gallery"
FORMAT_VERSION = 1
VIEWPOINTS = ("left", "right", "")
_VIEW_ALIASES = {"l": "left", "left": "left", "r": "right", "right": "right",
                 "": "", "unknown": "", "both": "", "front": "", "back": "", "top": ""}


class GalleryError(WildspaceError, ValueError):
    """A gallery folder or input table is unusable (the message names the problem)."""


def normalise_viewpoint(value) -> str:
    """``left``/``right`` (flank) or ``""`` when not stated; aliases L/R/Left/Right accepted."""
    v = str(value or "").strip().lower()
    return _VIEW_ALIASES.get(v, "")


@dataclass(frozen=True)
class Record:
    """One gallery image's metadata (``bbox`` is ``x, y, w, h`` normalised, or ``None``)."""

    image_id: str
    identity: str
    viewpoint: str = ""
    bbox: tuple[float, float, float, float] | None = None
    date: str = ""
    location: str = ""
    file: str = ""


@dataclass
class GalleryData:
    """A gallery in memory: records, image bytes, optional embeddings, local features."""

    name: str
    records: list[Record]
    images: list[bytes]
    embeddings: np.ndarray | None = None
    embedder: str | None = None
    features: list | None = None  # list[LocalFeatures]
    learned: list | None = None  # list[LearnedFeatures], in memory only (evaluation; not saved)
    calibrations: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def embedder_name(self) -> str:
        """The name of the embedder that made :attr:`embeddings`.

        Raises:
            GalleryError: the gallery names no embedder.
        """
        if self.embedder is None:
            raise GalleryError(f"gallery '{self.name}' has embeddings but names no embedder")
        return self.embedder

    @property
    def identities(self) -> np.ndarray:
        return np.array([r.identity for r in self.records])

    @property
    def viewpoints(self) -> np.ndarray:
        return np.array([r.viewpoint for r in self.records])

    def image(self, i: int) -> np.ndarray:
        """A stored image (a gallery from the Hub is data from elsewhere: same format allowlist)."""
        from wildspace.media.images import open_image

        with open_image(io.BytesIO(self.images[i]), check_shape=False) as im:
            return np.asarray(im.convert("RGB"))


def encode_jpeg(rgb: np.ndarray, max_side: int = 1280, quality: int = 92) -> bytes:
    """JPEG bytes of an RGB array, long side capped at ``max_side`` px."""
    from PIL import Image

    im = Image.fromarray(rgb)
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# -- features on disk --------------------------------------------------------------------
def _save_features(path: Path, features: list) -> None:
    offsets = np.cumsum([0] + [len(f.xy) for f in features]).astype(np.int64)
    xy = np.concatenate([f.xy for f in features]) if features else np.zeros((0, 2), np.float32)
    desc = (np.concatenate([f.descriptors for f in features]) if features
            else np.zeros((0, 128), np.float32)).astype(np.float16)
    sizes = np.array([f.size for f in features], dtype=np.int32).reshape(-1, 2)
    with open(path, "wb") as fh:
        np.savez(fh, xy=xy, descriptors=desc, sizes=sizes, offsets=offsets)


def _load_features(path: Path) -> list:
    from wildspace.reid.local_features import LocalFeatures

    with np.load(path) as z:
        xy, desc, sizes, off = z["xy"], z["descriptors"], z["sizes"], z["offsets"]
    return [LocalFeatures(xy[off[i]:off[i + 1]].astype(np.float32),
                          desc[off[i]:off[i + 1]].astype(np.float32),
                          (int(sizes[i, 0]), int(sizes[i, 1]))) for i in range(len(sizes))]


# -- reading and writing versions ----------------------------------------------------------
def version_dir(root: Path) -> Path:
    """The folder of the live version (local gallery) or the root itself (Hub snapshot)."""
    root = Path(root)
    current = root / "CURRENT"
    if current.is_file():
        return root / "versions" / current.read_text().strip()
    if (root / "gallery.json").is_file():
        return root
    raise GalleryError(f"{root} is not a gallery (no CURRENT or gallery.json)")


def write_version(folder: Path, gallery: GalleryData) -> None:
    """Write every file of one version into an empty ``folder``."""
    from datasets import Dataset, Features, Image, Sequence, Value

    folder.mkdir(parents=True, exist_ok=False)
    feats = Features({"image_id": Value("string"), "identity": Value("string"),
                      "viewpoint": Value("string"), "bbox": Sequence(Value("float32")),
                      "date": Value("string"), "location": Value("string"),
                      "file": Value("string"), "image": Image()})
    rows: dict[str, list[object]] = {k: [] for k in feats}
    for rec, img in zip(gallery.records, gallery.images):
        rows["image_id"].append(rec.image_id)
        rows["identity"].append(rec.identity)
        rows["viewpoint"].append(rec.viewpoint)
        rows["bbox"].append(list(rec.bbox) if rec.bbox else [])
        rows["date"].append(rec.date)
        rows["location"].append(rec.location)
        rows["file"].append(rec.file)
        rows["image"].append({"bytes": img, "path": None})
    Dataset.from_dict(rows, features=feats).save_to_disk(str(folder / "data"))
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": gallery.name,
                "count": len(gallery), "identities": len(set(gallery.identities.tolist())),
                "embedder": gallery.embedder, "calibrations": gallery.calibrations,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **gallery.meta}
    if gallery.embeddings is not None:
        from wildspace.reid.index import VectorIndex

        np.save(folder / "embeddings.npy", gallery.embeddings.astype(np.float32))
        VectorIndex.build(gallery.embeddings).save(folder / "index.faiss")
        manifest["dim"] = int(gallery.embeddings.shape[1])
    if gallery.features is not None:
        _save_features(folder / "features.npz", gallery.features)
    (folder / "gallery.json").write_text(json.dumps(manifest, indent=2))


def read_version(folder: Path) -> GalleryData:
    """Load one version folder (see the module docstring for the layout)."""
    from datasets import load_from_disk

    folder = Path(folder)
    try:
        manifest = json.loads((folder / "gallery.json").read_text())
    except (OSError, ValueError) as exc:
        raise GalleryError(f"{folder}: unreadable gallery.json ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise GalleryError(f"{folder}: not a {FORMAT} folder")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise GalleryError(f"{folder}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise GalleryError(f"{folder}: gallery format {manifest.get('format_version')} is newer "
                           f"than this wildspace ({FORMAT_VERSION}); upgrade wildspace")
    try:
        ds = load_from_disk(str(folder / "data"))
    except Exception as exc:  # datasets raises several types for broken folders
        raise GalleryError(f"{folder}: unreadable data/ ({type(exc).__name__}: {exc})") from None
    ds = ds.cast_column("image", __import__("datasets").Image(decode=False))
    records, images = [], []
    for row in ds:
        bbox = tuple(float(v) for v in row["bbox"]) if row["bbox"] else None
        records.append(Record(row["image_id"], row["identity"], row["viewpoint"] or "",
                              bbox if bbox and len(bbox) == 4 else None,
                              row["date"] or "", row["location"] or "", row["file"] or ""))
        images.append(row["image"]["bytes"])
    emb = np.load(folder / "embeddings.npy") if (folder / "embeddings.npy").is_file() else None
    feats = _load_features(folder / "features.npz") if (folder / "features.npz").is_file() else None
    if emb is not None and len(emb) != len(records):
        raise GalleryError(f"{folder}: {len(emb)} embeddings for {len(records)} images")
    if feats is not None and len(feats) != len(records):
        raise GalleryError(f"{folder}: local features for {len(feats)} of {len(records)} images")
    known = {"format", "format_version", "name", "count", "identities", "embedder",
             "calibrations", "updated", "dim"}
    return GalleryData(name=str(manifest.get("name", folder.name)), records=records,
                       images=images, embeddings=emb, embedder=manifest.get("embedder"),
                       features=feats, calibrations=dict(manifest.get("calibrations") or {}),
                       meta={k: v for k, v in manifest.items() if k not in known})


def save_gallery(root: Path, gallery: GalleryData, keep: int = 2) -> Path:
    """Write a new version under ``root`` and switch ``CURRENT`` to it atomically."""
    root = Path(root)
    (root / "versions").mkdir(parents=True, exist_ok=True)
    existing = [int(p.name) for p in (root / "versions").iterdir() if p.name.isdigit()]
    number = str(max(existing, default=0) + 1)
    staging = Path(tempfile.mkdtemp(dir=root / "versions", prefix=".staging-"))
    try:
        write_version(staging / "v", gallery)
        os.replace(staging / "v", root / "versions" / number)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".CURRENT-")
    with os.fdopen(fd, "w") as fh:
        fh.write(number)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / "CURRENT")
    for old in sorted((int(p.name) for p in (root / "versions").iterdir() if p.name.isdigit()))[:-keep]:
        shutil.rmtree(root / "versions" / str(old), ignore_errors=True)
    return root / "versions" / number


def open_gallery(root: Path) -> GalleryData:
    """Load the live version of a local gallery or a Hub snapshot folder."""
    return read_version(version_dir(root))


def pull_gallery(repo_id: str, revision: str, cache_dir: Path | None = None) -> Path:
    """A gallery dataset repo from the Hub at a pinned 40-hex ``revision`` (cache first)."""
    import re

    from huggingface_hub import snapshot_download

    if not re.fullmatch(r"[0-9a-f]{40}", revision or ""):
        raise GalleryError(f"revision must be a 40-hex commit (pinned), got '{revision}'")
    path = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                  cache_dir=cache_dir))
    version_dir(path)  # fail early if it is not a gallery
    return path


def push_gallery(root: Path, repo_id: str, token: str | None) -> str:
    """Upload the live version to a Hub dataset repo; returns the new commit id.

    Raises:
        GalleryError: no token configured (pushes need an authenticated user).
    """
    if not token:
        raise GalleryError("pushing a gallery needs a Hugging Face token (set HF_TOKEN or log in)")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=True)
    info = api.upload_folder(folder_path=str(version_dir(root)), repo_id=repo_id,
                             repo_type="dataset", commit_message="wildspace gallery update")
    return getattr(info, "oid", None) or str(info)
