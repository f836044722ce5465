"""Write every export users' tools read, from one set of results (used by the app's batch
tab, ``python -m wildspace convert`` and the workers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

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

    def md_document(self) -> dict:
        return megadetector.build_results(
            self.results, self.labels, self.detector, self.metadata,
            classification_categories=dict(self.classification_categories) or None,
            classifier=self.classifier, classifier_metadata=dict(self.classifier_metadata) or None)


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
    return ResultSet(results, labels, doc["info"].get("detector", "unknown"),
                     doc["info"].get("detector_metadata", {}), files,
                     classification_categories=doc.get("classification_categories", {}),
                     classifier=doc["info"].get("classifier"),
                     classifier_metadata=doc["info"].get("classifier_metadata", {}))


def write_exports(rs: ResultSet, out_dir: str | Path, threshold: float,
                  kinds: Sequence[str] = EXPORT_KINDS, name: str = "wildspace") -> dict[str, Path]:
    """Write the requested ``kinds`` into ``out_dir``; return ``{kind: path}``.

    ``threshold`` applies to every export except the MegaDetector JSON, which keeps all
    detections the run produced (tools such as Timelapse choose their own threshold).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(kinds) - set(EXPORT_KINDS)
    if unknown:
        raise ValueError(f"unknown export {', '.join(sorted(unknown))}; choose from {', '.join(EXPORT_KINDS)}")
    paths: dict[str, Path] = {}
    for kind in kinds:
        if kind in NEEDS_IMAGES and not rs.files:
            raise ValueError(f"the '{kind}' export needs the images (give the folder they are in)")
        paths[kind] = _WRITERS[kind](rs, out, threshold, name)
    return paths


def _md(rs: ResultSet, out: Path, threshold: float, name: str) -> Path:
    return megadetector.write_results(rs.md_document(), out / f"{name}_megadetector.json")


def _csv(rs: ResultSet, out: Path, threshold: float, name: str) -> Path:
    csv_export.write_images_csv(rs.results, rs.labels, out / f"{name}_images.csv", threshold)
    return csv_export.write_detections_csv(
        rs.results, rs.labels, out / f"{name}_detections.csv", threshold, rs.classification_categories,
        float(rs.classifier_metadata.get("typical_classification_threshold", 0.0)))


def _coco(rs: ResultSet, out: Path, threshold: float, name: str) -> Path:
    return coco_ct.write_coco(coco_ct.to_coco(rs.results, rs.labels, rs.files, threshold),
                              out / f"{name}_coco_camera_traps.json")


def _camtrap(rs: ResultSet, out: Path, threshold: float, name: str) -> Path:
    return camtrap_dp.write_package(rs, out / f"{name}_camtrap_dp", threshold, zip_path=out / f"{name}_camtrap_dp.zip")


def _crops(rs: ResultSet, out: Path, threshold: float, name: str) -> Path:
    return image_bundles.write_crops_zip(rs.results, rs.labels, rs.files, out / f"{name}_crops.zip", threshold)


def _sorted(rs: ResultSet, out: Path, threshold: float, name: str) -> Path:
    return image_bundles.write_sorted_zip(rs.results, rs.labels, rs.files, out / f"{name}_sorted.zip", threshold)


_WRITERS = {"md-json": _md, "csv": _csv, "coco": _coco, "camtrap-dp": _camtrap,
            "crops": _crops, "sorted": _sorted}
