"""The *Batch* tab: many images or zips in; summary, gallery, table and every export out."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import gradio as gr
from PIL import Image

from wildspace.formats.camtrap_dp import PackageOptions
from wildspace.formats.categories import best_by_kind, image_status, label_of
from wildspace.media.archives import count_inputs
from wildspace.media.draw import draw_detections
from wildspace.media.images import IMAGE_EXTENSIONS, ImageReadError, load_image
from wildspace.review.sources import REVIEW_FLOOR, record_run
from wildspace.runs.batch import RunOutput, run_image_batch, submit_image_batch
from wildspace.services.detectors import DetectorService
from wildspace.ui import deployments_form
from wildspace.ui.common import classifier_controls, gpu, model_controls, new_work_dir, species_step, user_errors
from wildspace.ui.fair_use import AppGuard
from wildspace.ui.identity import owner_of, private_owner

TABLE_HEADERS = ["file", "status", "detections", "max animal", "max person", "max vehicle",
                 "top label", "failure", "species"]
GALLERY_MAX = 48
UPLOAD_TYPES = sorted({e for ext in (*IMAGE_EXTENSIONS, ".zip") for e in (ext, ext.upper())})
THUMB_SIDE = 1024
PACKAGE = PackageOptions(missing_times="leave-out")  # media without a capture time: named, left out


def summary_markdown(out: RunOutput) -> str:
    s = out.summary
    return (f"**{s['images']} files** at threshold {out.threshold:.2f}: "
            f"{s['with animals']} with animals, {s['with people']} with people, "
            f"{s['with vehicles']} with vehicles, {s['empty']} empty, {s['failed']} failed"
            + (f", {s['with other objects']} with other objects" if s["with other objects"] else ""))


def table_rows(out: RunOutput) -> list[list]:
    rows = []
    for r in sorted(out.results, key=lambda r: r.file):
        dets = [d for d in r.detections or () if d.conf >= out.threshold]
        best = {k: round(v, 3) for k, v in best_by_kind(dets, out.info.labels).items()}
        top = max(dets, key=lambda d: d.conf, default=None)
        rows.append([r.file, image_status(r, out.info.labels, out.threshold), len(dets),
                     best.get("animal"), best.get("human"), best.get("vehicle"),
                     label_of(out.info.labels, top) if top else "", r.failure or "", species_cell(out, dets)])
    return rows


def species_cell(out: RunOutput, dets) -> str:
    """``zebra ×2, unknown`` — the species of an image's classified boxes."""
    if out.species is None:
        return ""
    names = [out.species.species(d)[0] for d in dets if d.classifications]
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(n if c == 1 else f"{n} ×{c}" for n, c in counts.items())


def gallery_items(out: RunOutput, work_dir: Path, max_pixels: int) -> list[tuple[str, str]]:
    """Annotated thumbnails (files on disk, not images in memory), images with detections first."""
    ranked = sorted((r for r in out.results if not r.failed and r.file in out.files),
                    key=lambda r: (-max((d.conf for d in r.detections or ()), default=0.0), r.file))
    items = []
    thumbs = work_dir / "thumbs"
    thumbs.mkdir(exist_ok=True)
    for i, r in enumerate(ranked[:GALLERY_MAX]):
        try:
            image = load_image(out.files[r.file], max_pixels=max_pixels)
        except ImageReadError:
            continue
        dets = tuple(d for d in r.detections or () if d.conf >= out.threshold)
        im = draw_detections(image, dets, out.info.labels, out.species.caption if out.species else None)
        im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
        path = thumbs / f"{i:04d}.jpg"
        im.save(path, quality=85)
        items.append((str(path), f"{r.file} — {image_status(r, out.info.labels, out.threshold)}"))
    return items


def run_batch_tab(service: DetectorService, files, model: str, threshold: float, out_root: Path,
                  progress=None, queue=None, owner: str = "anonymous", queue_above: int | None = None,
                  classifiers=None, classifier: str | None = None, species_threshold: float | None = None,
                  guard: AppGuard | None = None, request=None, deployments=None, utc_offset: str | None = None,
                  event_gap=None):
    """Generator: small batches run here; batches above ``queue_above`` files go to the worker
    queue and this answers at once with the job id (the Jobs tab follows it; it goes on if the
    page closes), so no app slot is held while the workers do it. With a ``guard`` (the app) the
    visitor's fair-use and disk quotas apply. Species (``classifier``) are added to batches run
    here; queued batches are detection only. ``deployments``, ``utc_offset`` and ``event_gap``
    (the deployments form) shape the Camtrap DP export, here and for a queued batch; they are
    checked before anything runs."""
    if not files:
        raise gr.Error("Upload images or a zip of images first.")
    form = deployments_form.form_values(deployments, utc_offset, event_gap)
    package = deployments_form.package_options(form, PACKAGE)
    paths = [f if isinstance(f, str) else f.name for f in files]
    queued = queue is not None and queue_above is not None and count_inputs(paths) > queue_above
    with user_errors(), (guard.heavy(request, owner, paths, "batch") if guard else nullcontext()) as watch:
        work_dir = guard.disk.new_run(out_root, owner) if guard else new_work_dir(out_root)

        def report(done: int, total: int, what: str) -> None:
            if watch is not None:
                watch.check()
            if progress is not None:
                progress((done, max(total, 1)), desc=f"{done}/{total} {what}")

        if queued:
            if guard is not None:
                guard.check_jobs(queue, owner)
            job_id = submit_image_batch(queue, owner, paths, model, min(float(threshold), REVIEW_FLOOR), work_dir,
                                        package=form)
            note = (" Species are not added to queued batches yet: run them with "
                    "`python -m wildspace detect --classifier …`."
                    if classifier and classifier != "none" else "")
            yield (f"Large batch: queued as job `{job_id}`. Follow it and download its results in the "
                   f"**Jobs** tab; it keeps running if you close this page.{note}", None, None, None)
            return
        species = species_step(classifiers, classifier, species_threshold, float(threshold))
        out = run_image_batch(service, paths, model, float(threshold), work_dir, progress=report,
                              species=species, keep_above=REVIEW_FLOOR, package=package)
        record_run(work_dir, out, owner)  # the Review tab can open it
    downloads = [str(p) for p in out.exports.values()]
    images_csv = next(iter((work_dir / "exports").glob("*_images.csv")), None)
    if images_csv is not None:
        downloads.insert(2, str(images_csv))
    yield (summary_markdown(out), gallery_items(out, work_dir, service.settings.max_pixels),
           table_rows(out), downloads)


def build_tab(service: DetectorService, out_root: Path, owner_state=None, queue=None,
              queue_above: int | None = None, classifiers=None, guard: AppGuard | None = None) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(file_count="multiple", label="Images or zip files",
                            file_types=UPLOAD_TYPES, elem_id="batch-files")
            model, threshold = model_controls(service, "batch")
            classifier, species_threshold = classifier_controls(classifiers, "batch")
            form = deployments_form.build_form("batch")
            button = gr.Button("Detect in all files", variant="primary", elem_id="batch-run")
        with gr.Column(scale=2):
            summary = gr.Markdown(label="Summary", elem_id="batch-summary")
            gallery = gr.Gallery(label="Detections (most confident first)", columns=4, height=420,
                                 elem_id="batch-gallery")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Results per file (click a header to sort)",
                                 interactive=False)
            downloads = gr.File(file_count="multiple", label="Downloads: MegaDetector JSON, CSV, "
                                "COCO Camera Traps, Camtrap DP, crops, images sorted into folders")

    @gpu
    def detect_batch(file_list, model_name, conf, classifier_name="none", species_conf=0.5, deployments=None,
                     utc_offset="+00:00", event_gap=60.0, token=None, request: gr.Request | None = None,
                     progress=gr.Progress()):
        """Find animals, people and vehicles in many camera-trap images or zip files.

        Args:
            file_list: images and/or zip files of images.
            model_name: detector name (e.g. megadetector-v5a).
            conf: confidence threshold between 0 and 1.
            classifier_name: species classifier for animal boxes, or "none".
            species_conf: species confidence below which a box reads "unknown".
            deployments: for the Camtrap DP export, a table with the columns deploymentID, folder,
                filePattern, latitude, longitude, cameraID, locationName, deploymentStart,
                deploymentEnd, utcOffset (as `convert --deployments`); empty: one per camera folder.
            utc_offset: the camera clocks' UTC offset, e.g. +02:00.
            event_gap: seconds between media that start a new event (default 60).
        Returns:
            a summary, annotated images, one table row per file, and export files
            (MegaDetector JSON, CSV, COCO Camera Traps, Camtrap DP, crops, sorted images).
        """
        paths = [f if isinstance(f, str) else f.name for f in file_list or []]
        big = queue is not None and queue_above is not None and count_inputs(paths) > queue_above
        owner = private_owner(request, token) if big else owner_of(request, token)  # a job must have one owner
        yield from run_batch_tab(service, file_list, model_name, conf, out_root, progress, queue, owner,
                                 queue_above, classifiers, classifier_name, species_conf, guard, request,
                                 deployments, utc_offset, event_gap)

    inputs = [files, model, threshold, classifier, species_threshold, *form.inputs]
    inputs += [owner_state] if owner_state is not None else []
    button.click(detect_batch, inputs, [summary, gallery, table, downloads], api_name="detect_batch")
