"""Build the Gradio Blocks from services (no global model state)."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from wildspace.runs.disk import DiskBudget
from wildspace.services.detectors import DetectorService
from wildspace.ui import batch_tab, jobs_tab, lookup_tab, models_tab, products_tab, single_image, train_tab, video_tab
from wildspace.ui.fair_use import AppGuard, FairUse
from wildspace.ui.identity import owner_state

INTRO = """# wildspace
Find animals, people and vehicles in camera-trap photos and videos with MegaDetector and other
open models, name their species, and check photos of market items for ivory, pangolin scales or
tiger parts, and tell individual animals apart (is this T-17, or a new tiger?). Results download in
the formats Timelapse, spreadsheets, COCO tools and GBIF
(Camtrap DP) read."""


def build_app(service: DetectorService, out_dir: Path | None = None, queue=None,
              queue_above: int | None = None, classifiers=None, feedback=None,
              galleries=None) -> gr.Blocks:
    """The app. With a ``queue``, batches of more than ``queue_above`` files go to the
    workers and a *Jobs* tab appears. ``classifiers`` (a ClassifierService) and ``feedback``
    (a FeedbackStore) default to ones over the detector service's data dir; so does
    ``galleries`` (a GalleryService for the *Individual lookup* tab).

    Runs and exports go under ``out_dir`` (default: the settings' work dir), bounded by the
    fair-use guards (``demo.wildspace_guard``): per-visitor queue places and heavy requests,
    request time, disk quotas and expiry (see :mod:`wildspace.settings.guards`)."""
    from gradio.utils import get_upload_folder

    from wildspace.classify.feedback import FeedbackStore
    from wildspace.services.classifiers import ClassifierService
    from wildspace.ui import mcp_schema

    mcp_schema.install()
    settings = service.settings
    out_dir = Path(out_dir or settings.work_dir)
    guards = settings.guards
    guard = AppGuard(FairUse(guards), DiskBudget(out_dir, guards, caches=[Path(get_upload_folder())],
                                                 store=queue.store if queue is not None else None))
    classifiers = classifiers or ClassifierService.sharing(service)
    feedback = feedback or FeedbackStore(service.settings.home / "feedback", service.settings.max_pixels)
    if galleries is None:
        from wildspace.services.galleries import GalleryService

        galleries = GalleryService(service.settings, detectors=service, device=service.device)
    # Gradio deletes the files it made once they are older than the results' expiry
    with gr.Blocks(title="wildspace", delete_cache=(_sweep_period(guards), int(guards.result_seconds))) as demo:
        gr.Markdown(INTRO)
        if service.settings.public_space:
            # Hugging Face OAuth (README front matter: hf_oauth): logged-in users own their
            # jobs, galleries and feedback by account; gallery writes need a login here.
            gr.LoginButton(elem_id="hf-login")
        stored, owner, on_load = owner_state(service.settings.home, service.settings.secret)
        with gr.Tab("Single image"):
            single_image.build_tab(service, out_dir / "single", classifiers)
        with gr.Tab("Batch"):
            batch_tab.build_tab(service, out_dir / "batch", owner, queue, queue_above, classifiers, guard)
        with gr.Tab("Video"):
            video_tab.build_tab(service, out_dir / "video", classifiers, guard, owner)
        with gr.Tab("Products"):
            products_model = products_tab.build_tab(classifiers, feedback, owner, service.settings.max_pixels)
        with gr.Tab("Individual lookup"):
            lookup_tab.build_tab(galleries, service, out_dir / "lookup", owner)
        train_job = None
        if queue is not None:
            with gr.Tab("Jobs"):
                jobs_tab.build_tab(queue, out_dir / "jobs", owner)
            with gr.Tab("Train"):
                train_job = train_tab.build_tab(queue, classifiers, owner, products_model, guard)
        with gr.Tab("Review"):
            from wildspace.ui import review_tab

            demo.wildspace_review = review_tab.build_tab(service, out_dir, owner, queue, guard, galleries,
                                                         train_job=train_job)
        with gr.Tab("Models"):
            models_tab.build_tab(service, models_tab.detector_dropdowns(demo), owner, guard)
        demo.load(on_load, stored, [stored, owner], api_name=False)
    demo.wildspace_guard = guard
    _queue_fairly(demo, guard, settings)
    return demo


def _sweep_period(guards) -> int:
    return int(min(3600.0, max(60.0, guards.result_seconds / 10)))


def _queue_fairly(demo: gr.Blocks, guard: AppGuard, settings) -> None:
    """Make every ``demo.queue(...)`` (ours, the caller's, or launch's own) per-visitor fair."""
    original = demo.queue

    def queue(*args, **kwargs):
        result = original(*args, **kwargs)
        guard.fair.install(demo)
        return result

    demo.queue = queue  # type: ignore[method-assign]
    demo.queue(**queue_options(settings))


def start_housekeeping(demo: gr.Blocks, stop: threading.Event | None = None,
                       every: float | None = None) -> threading.Event:
    """Delete stale runs, cache entries and finished jobs now and periodically (``app.py``
    does this at start: a restart cleans what is stale). Returns the event that stops it."""
    stop = stop or threading.Event()
    demo.wildspace_guard.disk.start_sweeper(stop, every)  # type: ignore[attr-defined]  # set by build_app
    return stop


def queue_options(settings) -> dict:
    """``Blocks.queue`` settings: at most ``WILDSPACE_CONCURRENCY`` handlers run at once
    (default 2; they share the services' cached models, so memory does not grow with users)
    and at most ``WILDSPACE_QUEUE_SIZE`` requests wait (default 100; more are refused)."""
    return {"default_concurrency_limit": settings.concurrency, "max_size": settings.queue_size}


def launch_options(service: DetectorService) -> dict:
    """``Blocks.launch`` settings from the limits: no single upload above the per-file size."""
    return {"max_file_size": service.settings.limits.max_file_bytes}


def mcp_available() -> bool:
    """Gradio's MCP server needs the ``gradio[mcp]`` extra."""
    import importlib.util

    return importlib.util.find_spec("mcp") is not None
