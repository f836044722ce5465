"""Write every export users' tools read, from one set of results (used by the app's batch
tab, ``python -m wildspace convert`` and the workers).

The exports are one set: everything is checked first (every ``file`` name distinct, capture
times found where Camtrap DP needs them), written into a private staging folder, made
world-readable (0644, like any file a user writes), and only then moved into place — a
failure leaves no export half-written and none of the set in the output folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from wildspace.errors import UsageError, WildspaceError
from wildspace.formats import camtrap_dp, coco_ct, csv_export, image_bundles, megadetector
from wildspace.types import ImageResult

EXPORT_KINDS = ("md-json", "csv", "coco", "camtrap-dp", "crops", "sorted")
NEEDS_IMAGES = ("crops", "sorted")


@dataclass(frozen=True)
class ResultSet:
    """Results plus what is needed to describe them."""

    results: Sequence[ImageResult]
    labels: tuple[str, ...]
    detector: str  # weights file name, as MegaDetector writes it
    metadata: dict
    files: Mapping[str, Path]  # result file name -> path on disk (may be empty)
    classification_categories: Mapping[str, str] = field(default_factory=dict)  # "0" -> species
    classifier: str | None = None
    classifier_metadata: Mapping = field(default_factory=dict)
    classification_descriptions: Mapping[str, str] = field(default_factory=dict)  # "0" -> taxonomy string
    completed: str | None = None  # detection_completion_time of the results file
    classification_completed: str | None = None

    def md_document(self) -> dict:
        return megadetector.build_results(
            self.results, self.labels, self.detector, self.metadata,
            completed=megadetector.parse_time(self.completed),
            classification_categories=dict(self.classification_categories) or None,
            classifier=self.classifier, classifier_metadata=dict(self.classifier_metadata) or None,
            classification_descriptions=dict(self.classification_descriptions) or None)


class DuplicateNamesError(WildspaceError, ValueError):
    """Two results have the same ``file`` name; exports would mix them up."""


def _is_file(path: Path) -> bool:
    """Like ``Path.is_file``, and False for a name no disk can hold (over 255 bytes)."""
    try:
        return path.is_file()
    except OSError:
        return False


def result_set_from_md(doc: dict, images_root: Path | None = None) -> ResultSet:
    """A :class:`ResultSet` from a MegaDetector document (files resolved under ``images_root``)."""
    results = megadetector.parse_results(doc)
    cats = doc["detection_categories"]
    n = max(int(k) for k in cats) if cats else 0
    labels = tuple(cats.get(str(i + 1), str(i + 1)) for i in range(n))
    files = {r.file: images_root / r.file for r in results if _is_file(images_root / r.file)} if images_root else {}
    info = doc["info"]
    descriptions = doc.get("classification_category_descriptions")
    return ResultSet(results, labels, info.get("detector", "unknown"),
                     info.get("detector_metadata", {}), files,
                     classification_categories=doc.get("classification_categories", {}),
                     classifier=info.get("classifier"),
                     classifier_metadata=info.get("classifier_metadata", {}),
                     classification_descriptions={str(k): str(v) for k, v in descriptions.items()}
                     if isinstance(descriptions, dict) else {},
                     completed=info.get("detection_completion_time"),
                     classification_completed=info.get("classification_completion_time"))


def check_unique_names(results: Sequence[ImageResult]) -> None:
    """Raise :class:`DuplicateNamesError` when two results share a ``file`` name."""
    dup = sorted(n for n, k in Counter(r.file for r in results).items() if k > 1)
    if dup:
        raise DuplicateNamesError(f"{len(dup)} file name(s) appear more than once ({', '.join(dup[:5])}); "
                                  "give the folders so names stay distinct (e.g. cardA/IMG_0001.JPG)")


def write_exports(rs: ResultSet, out_dir: str | Path, threshold: float,
                  kinds: Sequence[str] = EXPORT_KINDS, name: str = "wildspace",
                  package: camtrap_dp.PackageOptions | None = None) -> dict[str, Path]:
    """Write the requested ``kinds`` into ``out_dir`` as one set; return ``{kind: path}``.

    ``threshold`` applies to every export except the MegaDetector JSON, which keeps all
    detections the run produced (tools such as Timelapse choose their own threshold).
    ``package`` describes the Camtrap DP package (deployments, times, event gap; by default
    media without a capture time are left out and named in its description).

    Raises:
        DuplicateNamesError: two results share a name (nothing is written).
        MissingTimesError: ``package.missing_times == "refuse"`` and media lack a time.
        ValueError: an unknown kind, or one that needs the images without them.
    """
    out = Path(out_dir)
    unknown = set(kinds) - set(EXPORT_KINDS)
    if unknown:
        raise UsageError(f"unknown export {', '.join(sorted(unknown))}; choose from {', '.join(EXPORT_KINDS)}")
    for kind in kinds:
        if kind in NEEDS_IMAGES and not rs.files:
            raise UsageError(f"the '{kind}' export needs the images (give the folder they are in)")
    check_unique_names(rs.results)
    package = package or camtrap_dp.PackageOptions(missing_times="leave-out")
    times = None
    if "camtrap-dp" in kinds or "coco" in kinds:
        from wildspace.formats.timestamps import find_times

        times = find_times([r.file for r in rs.results if not r.failed], rs.files, package.times)
    ctx = _Context(package, times)
    if "camtrap-dp" in kinds:  # refuses (missing times) before anything is written
        ctx.tables = camtrap_dp.build_tables(rs, threshold, package, times)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".exports-", dir=out))
    try:
        staged = {kind: _WRITERS[kind](rs, stage, threshold, name, ctx) for kind in kinds}
        for p in sorted(stage.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
        return {kind: out / p.relative_to(stage) for kind, p in staged.items()}
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@dataclass
class _Context:
    package: camtrap_dp.PackageOptions
    times: dict | None
    tables: dict | None = None


def _md(rs: ResultSet, out: Path, threshold: float, name: str, ctx: _Context) -> Path:
    return megadetector.write_results(rs.md_document(), out / f"{name}_megadetector.json")


def _csv(rs: ResultSet, out: Path, threshold: float, name: str, ctx: _Context) -> Path:
    csv_export.write_images_csv(rs.results, rs.labels, out / f"{name}_images.csv", threshold)
    return csv_export.write_detections_csv(
        rs.results, rs.labels, out / f"{name}_detections.csv", threshold, rs.classification_categories,
        float(rs.classifier_metadata.get("typical_classification_threshold", 0.0)))


def _coco(rs: ResultSet, out: Path, threshold: float, name: str, ctx: _Context) -> Path:
    from wildspace.formats.events import assign

    when = {f: t.time for f, t in (ctx.times or {}).items() if t is not None}
    where = {r.file: assign(r.file, ctx.package.deployments) for r in rs.results}
    return coco_ct.write_coco(coco_ct.to_coco(rs.results, rs.labels, rs.files, threshold,
                                              times=when, locations=where),
                              out / f"{name}_coco_camera_traps.json")


def _camtrap(rs: ResultSet, out: Path, threshold: float, name: str, ctx: _Context) -> Path:
    return camtrap_dp.write_package(rs, out / f"{name}_camtrap_dp", threshold, ctx.package,
                                    zip_path=out / f"{name}_camtrap_dp.zip", tables=ctx.tables)


def _crops(rs: ResultSet, out: Path, threshold: float, name: str, ctx: _Context) -> Path:
    return image_bundles.write_crops_zip(rs.results, rs.labels, rs.files, out / f"{name}_crops.zip", threshold)


def _sorted(rs: ResultSet, out: Path, threshold: float, name: str, ctx: _Context) -> Path:
    return image_bundles.write_sorted_zip(rs.results, rs.labels, rs.files, out / f"{name}_sorted.zip", threshold)


_WRITERS = {"md-json": _md, "csv": _csv, "coco": _coco, "camtrap-dp": _camtrap,
            "crops": _crops, "sorted": _sorted}
