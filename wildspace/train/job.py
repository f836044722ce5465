"""Training as a queued job: submit, run on a worker with per-epoch progress, cancel, resume.

The run folder (checkpoint after every epoch, split, best weights) lives in the job's
storage (``<storage>/jobs/<id>/train/``), so a worker that is killed leaves the last
checkpoint behind; recovery re-queues the job and the next worker continues from that
epoch. With remote storage (fsspec URL) the run folder is a local cache that is uploaded
after every epoch and downloaded before a resume.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from wildspace.jobs.store import JobSpec, JobStore
from wildspace.train.classifier import BEST, CHECKPOINT, Hooks, TrainConfig

KIND = "train-classifier"
_SYNCED = (CHECKPOINT, "split.json", BEST)


def training_spec(owner: str, data_path: str, config: TrainConfig, license: str = "unknown",
                  replace_model: bool = False) -> JobSpec:
    """A job that trains ``config`` on ``data_path`` (a folder, a CSV, a zip of class folders,
    or a ``stored:`` input of the job). ``config.data``/``out_dir`` are set by the worker."""
    config.check()
    return JobSpec(owner=owner, kind=KIND, inputs=[{"name": Path(data_path).name or "data", "path": data_path}],
                   model=config.name, chunk_size=1,
                   options={"config": asdict(config), "license": license, "replace": replace_model})


def _work_dir(store: JobStore, job_id: str) -> Path:
    if store.files.local:
        return Path(store._dir(job_id, "train"))
    return Path(tempfile.gettempdir()) / "wildspace-train" / job_id


def _sync(store: JobStore, job_id: str, work: Path, up: bool) -> None:
    if store.files.local:
        return
    for name in _SYNCED:
        remote = store._dir(job_id, "train", name)
        if up and (work / name).is_file():
            store.files.put_file(work / name, remote)
        elif not up and store.files.exists(remote) and not (work / name).is_file():
            work.mkdir(parents=True, exist_ok=True)
            store.files.fs.get_file(remote, str(work / name))


def _training_data(store: JobStore, job_id: str, spec: JobSpec, work: Path) -> str:
    """A local folder or CSV for the job's input; a zip is unpacked safely into ``work``
    and described by a CSV (class = each image's folder)."""
    import csv

    path = store.local_input(job_id, spec.inputs[0]["path"], work / "inputs")
    if Path(path).suffix.lower() != ".zip":
        return str(path)
    from wildspace.media.archives import unpack_uploads

    table = work / "data.csv"
    if table.is_file():
        return str(table)
    unpacked = unpack_uploads([path], work / "data")
    rows = [(str(p), Path(name).parent.name) for p, name in unpacked.files if Path(name).parent.name]
    if not rows:
        raise ValueError("the zip has no images inside class folders (expected <class>/<image>.jpg)")
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label"])
        w.writerows(rows)
    return str(table)


def run_training(store: JobStore, job_id: str, ctx, renew: Callable[[], object]) -> dict | None:
    """Run (or resume) a training job on a worker; returns the result written, or None when
    it stopped early (cancel, worker shutdown) and will be resumed later."""
    from wildspace.errors import USER_ERRORS
    from wildspace.train.runs import run_classifier

    spec = store.spec(job_id)
    if store.cancelled(job_id) or store.result(job_id) is not None:
        return None
    work = _work_dir(store, job_id)
    work.mkdir(parents=True, exist_ok=True)
    _sync(store, job_id, work, up=False)
    opts = spec.options
    settings = ctx.service.settings

    def tick() -> bool:
        renew()
        return ctx.stop.is_set() or store.cancelled(job_id)

    def on_epoch(log: dict) -> None:
        _sync(store, job_id, work, up=True)
        store.put_progress(job_id, log)

    try:
        config = replace(TrainConfig(**opts["config"]), data=_training_data(store, job_id, spec, work),
                         out_dir=str(work), images_dir=None)
        summary = run_classifier(config, settings, Hooks(on_epoch=on_epoch, tick=tick),
                                 license=opts.get("license", "unknown"), replace=bool(opts.get("replace")))
    except USER_ERRORS as exc:  # bad data or settings: a clear failure, not a retry loop
        result = {"state": "failed", "error": exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)}
        store.put_result(job_id, result)
        return result
    if summary["state"] != "done":
        return None
    store.put_result(job_id, summary)
    return summary
