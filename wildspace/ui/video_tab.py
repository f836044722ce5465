"""The *Video* tab: sampled frames through the detector, an annotated video that plays in the
browser, a per-video summary and MegaDetector video JSON (which keeps the boxes down to
``REVIEW_FLOOR``: the Review tab pages through the sampled frames at any threshold)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import gradio as gr

from wildspace.formats.categories import best_by_kind
from wildspace.media.archives import VIDEO_EXTENSIONS
from wildspace.media.video import Sampling
from wildspace.review.sources import REVIEW_FLOOR, record_video_run
from wildspace.runs.batch import RunOutput, run_videos
from wildspace.services.detectors import DetectorService
from wildspace.ui.common import classifier_controls, gpu, model_controls, new_work_dir, species_step, user_errors
from wildspace.ui.fair_use import AppGuard
from wildspace.ui.identity import owner_of

SUMMARY_HEADERS = ["video", "frame rate", "frames analysed", "frames with detections",
                   "max animal", "max person", "max vehicle", "failure", "species"]
MODES = ("every N frames", "every S seconds")
VIDEO_TYPES = sorted({e for ext in (*VIDEO_EXTENSIONS, ".zip") for e in (ext, ext.upper())})


def summary_rows(out: RunOutput) -> list[list]:
    rows = []
    for r in sorted(out.results, key=lambda r: r.file):
        dets = [d for d in r.detections or () if d.conf >= out.threshold]
        best = {k: round(v, 3) for k, v in best_by_kind(dets, out.info.labels).items()}
        frames = sorted({d.frame_number for d in dets if d.frame_number is not None})  # video: all have one
        rows.append([r.file, r.frame_rate, len(r.frames_processed or ()),
                     ", ".join(map(str, frames[:40])) + (" …" if len(frames) > 40 else ""),
                     best.get("animal"), best.get("human"), best.get("vehicle"), r.failure or "",
                     _species_summary(out, dets)])
    return rows


def _species_summary(out: RunOutput, dets) -> str:
    """Species seen in a video, most frequent first: ``zebra (12 boxes), unknown (3 boxes)``."""
    if out.species is None:
        return ""
    names = [out.species.species(d)[0] for d in dets if d.classifications]
    ranked = sorted({n: names.count(n) for n in names}.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{n} ({c} box{'es' if c > 1 else ''})" for n, c in ranked)


def sampling_from(mode: str, value: float) -> Sampling:
    if mode not in MODES:
        raise gr.Error(f"Sampling must be one of: {', '.join(MODES)}")
    if value is None or value <= 0:
        raise gr.Error("The sampling step must be a positive number.")
    return Sampling(every_n_frames=max(1, int(value))) if mode == MODES[0] else Sampling(every_seconds=float(value))


def detect_videos(service: DetectorService, files, model: str, threshold: float, mode: str,
                  step: float, out_root: Path, progress=None, classifiers=None, classifier: str | None = None,
                  species_threshold: float | None = None, guard: AppGuard | None = None, request=None,
                  owner: str = "anonymous"):
    """Detect in uploaded videos; with a ``guard`` (the app) fair use and disk quotas apply."""
    if not files:
        raise gr.Error("Upload one or more videos first.")
    paths = [f if isinstance(f, str) else f.name for f in files]
    sampling = sampling_from(mode, step)
    heavy = guard.heavy(request, owner, paths, "video run", VIDEO_EXTENSIONS) if guard else nullcontext()
    with user_errors(), heavy as watch:
        work_dir = guard.disk.new_run(out_root, owner) if guard else new_work_dir(out_root)

        def report(done: int, total: int, what: str) -> None:
            if watch is not None:
                watch.check()
            if progress is not None:
                progress((done, max(total, 1)), desc=f"{done}/{total} {what}")

        species = species_step(classifiers, classifier, species_threshold, float(threshold))
        out = run_videos(service, paths, model, float(threshold), work_dir, sampling, progress=report,
                         species=species, keep_above=REVIEW_FLOOR)
        record_video_run(work_dir, out, owner)  # the Review tab can open it, frame by frame
    videos = [str(p) for p in out.annotated.values()]
    first = videos[0] if videos else None
    return first, videos or None, summary_rows(out), str(out.exports["md-json"])


def build_tab(service: DetectorService, out_root: Path, classifiers=None, guard: AppGuard | None = None,
              owner_state=None) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(file_count="multiple", label="Videos", file_types=VIDEO_TYPES, elem_id="video-files")
            with gr.Row():
                mode = gr.Radio(list(MODES), value=MODES[1], label="Sample")
                step = gr.Number(value=1, minimum=0.01, label="N frames / S seconds", elem_id="video-step")
            model, threshold = model_controls(service, "video")
            classifier, species_threshold = classifier_controls(classifiers, "video")
            button = gr.Button("Detect in videos", variant="primary", elem_id="video-run")
        with gr.Column(scale=2):
            video = gr.Video(label="Annotated video (sampled frames)", format="mp4", elem_id="video-output")
            all_videos = gr.File(file_count="multiple", label="All annotated videos")
            table = gr.Dataframe(headers=SUMMARY_HEADERS, label="Per-video summary", interactive=False,
                                 elem_id="video-summary")
            md_json = gr.File(label="MegaDetector video JSON", elem_id="video-json")

    @gpu
    def detect_video(file_list, model_name, conf, sample_mode, sample_step, classifier_name="none",
                     species_conf=0.5, token=None, request: gr.Request | None = None, progress=gr.Progress()):
        """Find animals, people and vehicles in camera-trap videos.

        Args:
            file_list: video files (mp4, avi, asf, mov, mkv …).
            model_name: detector name (e.g. megadetector-v5a).
            conf: confidence threshold between 0 and 1.
            sample_mode: "every N frames" or "every S seconds".
            sample_step: N (frames) or S (seconds).
            classifier_name: species classifier for animal boxes, or "none".
            species_conf: species confidence below which a box reads "unknown".
        Returns:
            the first annotated video, all annotated videos, a per-video summary and
            MegaDetector video JSON.
        """
        return detect_videos(service, file_list, model_name, conf, sample_mode, sample_step, out_root, progress,
                             classifiers, classifier_name, species_conf, guard, request, owner_of(request, token))

    inputs = [files, model, threshold, mode, step, classifier, species_threshold]
    button.click(detect_video, inputs + ([owner_state] if owner_state is not None else []),
                 [video, all_videos, table, md_json],
                 api_name="detect_video")
