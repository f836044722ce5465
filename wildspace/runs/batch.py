"""Batch and video runs as the app and (later) the workers do them: uploads in, results and
every export out. One function per kind of run, so handing a run to the worker queue only
changes who calls it."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from wildspace.detect.pipeline import detect_files
from wildspace.detect.video import detect_video
from wildspace.formats.categories import summarise
from wildspace.formats.exports import EXPORT_KINDS, ResultSet, write_exports
from wildspace.formats.megadetector import detector_metadata
from wildspace.media.archives import VIDEO_EXTENSIONS, unpack_uploads
from wildspace.media.video import Sampling
from wildspace.services.detectors import DetectorService
from wildspace.settings.limits import UploadLimits
from wildspace.types import DetectorInfo, ImageResult

if TYPE_CHECKING:
    from wildspace.classify.species import SpeciesStep
    from wildspace.formats.camtrap_dp import PackageOptions

Progress = Callable[[int, int, str], None]  # (done, total, what)
PACKAGE_OPTION = "camtrap_dp"  # a queued batch's deployments form, in its JobSpec.options


@dataclass
class RunOutput:
    results: list[ImageResult]
    info: DetectorInfo
    threshold: float
    files: dict[str, Path] = field(default_factory=dict)
    exports: dict[str, Path] = field(default_factory=dict)
    annotated: dict[str, Path] = field(default_factory=dict)  # videos: name -> annotated mp4
    species: SpeciesStep | None = None  # the classifier that added species, if any
    detect_threshold: float | None = None  # when lower than ``threshold``: results keep boxes down to it

    @property
    def summary(self) -> dict[str, int]:
        return summarise(self.results, self.info.labels, self.threshold)


def result_set(out: RunOutput) -> ResultSet:
    info = out.info
    return ResultSet(out.results, info.labels, info.extra.get("file", info.name),
                     detector_metadata(info, min(out.threshold, out.detect_threshold or out.threshold)), out.files,
                     **(out.species.md_fields() if out.species is not None else {}))


def run_image_batch(service: DetectorService, uploads: Sequence[str | Path], model: str,
                    threshold: float, work_dir: Path, progress: Progress | None = None,
                    batch_size: int | None = None, limits: UploadLimits | None = None,
                    exports: Sequence[str] = EXPORT_KINDS, species: SpeciesStep | None = None,
                    keep_above: float | None = None, package: PackageOptions | None = None) -> RunOutput:
    """Unpack ``uploads`` (images and zips) under ``work_dir``, detect (and classify the
    animal boxes with ``species``), write every export. ``limits`` default to the service's
    settings (``WILDSPACE_MAX_*``). With ``keep_above`` below ``threshold`` the results (and the
    MD JSON) keep the boxes down to it, for review; everything else still uses ``threshold``.
    ``package``: the Camtrap DP package's deployments, UTC offset and event gap (the app's
    deployments form; default: a deployment per camera folder, UTC, 60 s)."""
    work_dir = Path(work_dir)
    limits = limits or service.settings.limits.upload_limits()
    unpacked = unpack_uploads(uploads, work_dir / "inputs", limits)
    detector = service.load(name=model)
    total = len(unpacked.files) + len(unpacked.failures)
    results = [ImageResult(name, None, failure=why) for name, why in unpacked.failures]
    if progress:
        progress(len(results), total, "images")
    detect_at = threshold if keep_above is None else min(threshold, keep_above)
    stream = detect_files(detector, unpacked.files, detect_at, batch_size=batch_size,
                          max_pixels=service.settings.max_pixels,
                          fast_decode=service.settings.fast_decode)
    if species is not None:
        stream = species.on_results(stream, {name: p for p, name in unpacked.files}, detector.info.labels,
                                    service.settings.max_pixels)
    for r in stream:
        results.append(r)
        if progress:
            progress(len(results), total, "images")
    out = RunOutput(results, detector.info, threshold, files={name: p for p, name in unpacked.files},
                    species=species, detect_threshold=detect_at)
    out.exports = write_exports(result_set(out), work_dir / "exports", threshold, exports, package=package)
    return out


def submit_image_batch(queue, owner: str, uploads: Sequence[str | Path], model: str,
                       threshold: float, work_dir: Path, limits: UploadLimits | None = None,
                       chunk_size: int = 16, package: dict | None = None) -> str:
    """Hand a batch to the worker queue: inputs are unpacked here, then copied into the
    job's folder in the shared storage (workers may be elsewhere); files refused while
    unpacking are recorded as failures at once. ``package`` (plain values: ``rows``,
    ``utc_offset``, ``event_gap``, as :func:`~wildspace.formats.camtrap_dp.with_deployments`
    takes them) is kept with the job for its Camtrap DP export."""
    from wildspace.jobs.store import JobSpec

    job_id = queue.store.new_id()
    limits = limits or queue.settings.limits.upload_limits()
    staged, refused = stage_uploads(queue.store, job_id, uploads, Path(work_dir) / "inputs", limits)
    spec = JobSpec(owner=owner, kind="detect-images", inputs=staged + [{"name": n, "path": ""} for n, _ in refused],
                   model=model, threshold=threshold, chunk_size=chunk_size, id=job_id,
                   options={PACKAGE_OPTION: dict(package)} if package else {})
    return submit_with_refused(queue, spec, refused)


def stage_uploads(store, job_id: str, uploads: Sequence[str | Path], unpack_dir: Path,
                  limits: UploadLimits, seen: set[str] | None = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """Unpack uploads (images, zips) with ``limits`` and copy each file into the job's storage.

    Returns ``(inputs, refused)``: job inputs ``{"name", "path"}`` and ``(name, reason)`` for
    every file refused while unpacking. Names already in ``seen`` are made unique."""
    from wildspace.media.archives import unique_name

    seen = set() if seen is None else seen
    unpacked = unpack_uploads(uploads, unpack_dir, limits)
    inputs = []
    for path, name in unpacked.files:
        name = unique_name(name, seen)
        inputs.append({"name": name, "path": store.put_input(job_id, path, name)})
    return inputs, [(unique_name(name, seen), why) for name, why in unpacked.failures]


def submit_with_refused(queue, spec, refused: list[tuple[str, str]]) -> str:
    """Create the job, record the refused files (the last inputs of ``spec``) as failures, queue it."""
    store = queue.store
    store.create(spec)
    for k, (name, why) in enumerate(refused, start=spec.total - len(refused)):
        store.put_item(spec.id, k, ImageResult(name, None, failure=why), worker="upload")
    queue.enqueue_pending(spec.id)
    return spec.id


def job_package(spec) -> PackageOptions | None:
    """The Camtrap DP options a queued batch was submitted with (None: the defaults)."""
    given = spec.options.get(PACKAGE_OPTION)
    if not given:
        return None
    from wildspace.formats.camtrap_dp import PackageOptions, with_deployments

    return with_deployments(PackageOptions(missing_times="leave-out"), given.get("rows") or (),
                            given.get("utc_offset"), given.get("event_gap"))


def job_output(store, job_id: str, owner: str, work_dir: Path, threshold: float,
               exports: Sequence[str] = EXPORT_KINDS) -> RunOutput:
    """Results and exports of a queued job (done or not: what is finished so far)."""
    spec = store.spec(job_id, owner)
    det = store.detector(job_id) or {"labels": [], "detector": spec.model or "unknown", "metadata": {}}
    meta = det["metadata"]
    info = DetectorInfo(name=meta.get("model_name", spec.model or "unknown"), labels=tuple(det["labels"]),
                        input_size=int(meta.get("image_size") or 0),
                        typical_threshold=meta.get("typical_detection_threshold", 0.2),
                        conservative_threshold=meta.get("conservative_detection_threshold", 0.05),
                        version=meta.get("megadetector_version"), extra={"file": det["detector"]})
    cache = Path(work_dir) / "inputs-cache"
    files = {i["name"]: store.local_input(job_id, i["path"], cache) for i in spec.inputs if i["path"]}
    out = RunOutput(store.results(job_id), info, threshold, files=files)
    out.exports = write_exports(result_set(out), Path(work_dir) / "exports", threshold, exports,
                                name=f"wildspace-job-{job_id[:8]}", package=job_package(spec))
    return out


def run_videos(service: DetectorService, uploads: Sequence[str | Path], model: str,
               threshold: float, work_dir: Path, sampling: Sampling,
               progress: Progress | None = None, batch_size: int = 8,
               species: SpeciesStep | None = None, keep_above: float | None = None) -> RunOutput:
    """Detect on the sampled frames of each video; write annotated MP4s and video MD JSON.
    Uploads, frame sizes and video lengths are bounded by the service's limits. With
    ``keep_above`` below ``threshold`` the results and the MD JSON keep the boxes down to it, for
    review (the annotated videos and the CSV use ``threshold``). ``files`` of the output: the
    videos on disk (set after the exports, which are written as before)."""
    work_dir = Path(work_dir)
    detector = service.load(name=model)
    limits = service.settings.limits
    unpacked = unpack_uploads(uploads, work_dir / "inputs", limits.upload_limits(), extensions=VIDEO_EXTENSIONS)
    results = [ImageResult(name, None, failure=why) for name, why in unpacked.failures]
    annotated: dict[str, Path] = {}
    (work_dir / "annotated").mkdir(parents=True, exist_ok=True)
    total = len(unpacked.files)
    for i, (path, name) in enumerate(unpacked.files):
        target = work_dir / "annotated" / f"{i:03d}_{Path(name).stem}.mp4"
        r = detect_video(detector, path, name, threshold, sampling, batch_size, annotated_path=target,
                         species=species, max_seconds=limits.max_video_seconds,
                         max_pixels=limits.max_pixels, keep_above=keep_above)
        results.append(r)
        if not r.failed and target.is_file():
            annotated[name] = target
        if progress:
            progress(i + 1, total, "videos")
    detect_at = threshold if keep_above is None else min(threshold, keep_above)
    out = RunOutput(results, detector.info, threshold, files={}, annotated=annotated, species=species,
                    detect_threshold=detect_at)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.exports = write_exports(result_set(out), work_dir / "exports", threshold, ("md-json", "csv"),
                                name=f"wildspace-video-{stamp}")
    out.files = {name: Path(path) for path, name in unpacked.files}  # for review (record_video_run)
    return out
