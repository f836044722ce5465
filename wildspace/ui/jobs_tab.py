"""The *Jobs* tab: the caller's own queued jobs, live progress, cancel, downloads."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from wildspace.jobs.store import JobNotFound
from wildspace.runs.batch import job_output
from wildspace.ui.common import new_work_dir
from wildspace.ui.free_dropdown import FreeDropdown
from wildspace.ui.identity import private_owner

HEADERS = ["job", "state", "done", "total", "failed", "created (UTC)", "model"]


def job_rows(queue, owner: str) -> list[list]:
    return [[s.id, s.state, s.done, s.total, s.failures, s.created[:19].replace("T", " "), s.model]
            for s in queue.store.list(owner)]


def list_jobs(queue, owner: str):
    rows = job_rows(queue, owner)
    return rows, gr.update(choices=[r[0] for r in rows])


def cancel_job(queue, job_id: str | None, owner: str):
    if not job_id:
        raise gr.Error("Choose one of your jobs first.")
    try:
        queue.store.cancel(job_id, owner)
    except JobNotFound:
        raise gr.Error("No such job among yours.") from None
    return list_jobs(queue, owner)


def job_results(queue, job_id: str | None, owner: str, out_root: Path, threshold: float = 0.2):
    if not job_id:
        raise gr.Error("Choose one of your jobs first.")
    try:
        if queue.store.spec(job_id, owner).kind != "detect-images":
            raise gr.Error("This is a training job: follow it in the Train tab; "
                           "its model appears in the app when done.")
        out = job_output(queue.store, job_id, owner, new_work_dir(out_root), threshold,
                         exports=("md-json", "csv", "coco", "camtrap-dp"))
    except JobNotFound:
        raise gr.Error("No such job among yours.") from None
    return [str(p) for p in out.exports.values()]


def build_tab(queue, out_root: Path, owner_state) -> None:
    gr.Markdown("Batches above the size limit run on the worker queue. They keep running when "
                "you close the page and survive a restart of the app; only you can see yours.")
    table = gr.Dataframe(headers=HEADERS, label="Your jobs", interactive=False, elem_id="jobs-table")
    with gr.Row():
        job = FreeDropdown(label="Job", choices=[], allow_custom_value=True, elem_id="jobs-choice")
        threshold = gr.Slider(0.01, 0.99, value=0.2, step=0.01, label="Threshold for the exports")
    with gr.Row():
        refresh = gr.Button("Refresh")
        cancel = gr.Button("Cancel job", variant="stop")
        download = gr.Button("Download results", variant="primary")
    files = gr.File(file_count="multiple", label="Results so far (MegaDetector JSON, CSV, COCO, Camtrap DP)")
    timer = gr.Timer(3.0)

    def jobs_list(token=None, request: gr.Request | None = None):
        """Your queued jobs (id, state, done, total, failed, created, model).

        Returns:
            a table of your jobs, and the job picker's choices.
        """
        return list_jobs(queue, private_owner(request, token))

    def _tick(token, request: gr.Request):
        if token is None and getattr(request, "username", None) is None:
            return gr.update(), gr.update()  # page still loading: no owner yet
        return jobs_list(token, request)

    def jobs_cancel(job_id, token=None, request: gr.Request | None = None):
        """Cancel one of your queued jobs.

        Args:
            job_id: the job's id (from detect_batch or list_jobs).
        Returns:
            your jobs after the cancel.
        """
        return cancel_job(queue, job_id, private_owner(request, token))

    def jobs_results(job_id, conf, token=None, request: gr.Request | None = None):
        """The results of one of your queued jobs so far (MegaDetector JSON, CSV, COCO, Camtrap DP).

        Args:
            job_id: the job's id (from detect_batch or list_jobs).
            conf: confidence threshold for the exports.
        Returns:
            the export files.
        """
        return job_results(queue, job_id, private_owner(request, token), out_root, conf)

    refresh.click(jobs_list, [owner_state], [table, job], api_name="list_jobs")
    timer.tick(_tick, [owner_state], [table, job], api_name=False, show_progress="hidden")  # type: ignore[arg-type]  # gradio takes False: private
    cancel.click(jobs_cancel, [job, owner_state], [table, job], api_name="cancel_job")
    download.click(jobs_results, [job, threshold, owner_state], [files], api_name="job_results")
