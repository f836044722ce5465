"""Training as a queued job: submit, run on a worker with per-epoch progress, cancel, resume.

Two kinds: ``train-classifier`` (a zip of class folders, a folder or a CSV) and
``train-reid`` (a re-ID embedder: a zip of images with ``identities.csv``, or a folder
plus a CSV).

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

from wildspace.errors import NotFound, UsageError
from wildspace.jobs.store import TRAIN_KINDS, JobSpec, JobStore
from wildspace.train.classifier import BEST, CHECKPOINT, Hooks, TrainConfig

KIND = "train-classifier"
REID_KIND = "train-reid"
assert TRAIN_KINDS == (KIND, REID_KIND)  # noqa: S101  (the queue routes these kinds to training)
REID_CHECKPOINT = "reid-checkpoint.pt"  # written by wildspace.train.reid.train_embedder
REID_TABLE = "identities.csv"
_SYNCED = (CHECKPOINT, "split.json", BEST, "init.json")  # init.json: the initial weights (wildspace.train.init)
_REID_SYNCED = (REID_CHECKPOINT, "init.json")


def training_spec(owner: str, data_path: str, config: TrainConfig, license: str = "unknown",
                  replace_model: bool = False) -> JobSpec:
    """A job that trains ``config`` on ``data_path`` (a folder, a CSV, a zip of class folders,
    or a ``stored:`` input of the job). ``config.data``/``out_dir`` are set by the worker."""
    config.check()
    return JobSpec(owner=owner, kind=KIND, inputs=[{"name": Path(data_path).name or "data", "path": data_path}],
                   model=config.name, chunk_size=1,
                   options={"config": asdict(config), "license": license, "replace": replace_model})


def reid_training_spec(owner: str, data_path: str, config, identities: str | None = None,
                       license: str = "unknown", replace_model: bool = False) -> JobSpec:
    """A job that trains the re-ID embedder ``config`` (a :class:`ReidConfig`) on ``data_path``:
    a zip holding images and ``identities.csv`` (at its root or one folder down; file paths
    relative to the CSV), a ``stored:`` zip of the job, or a folder with the CSV ``identities``.
    ``config.images``/``identities``/``out_dir`` are set by the worker."""
    config.check()
    return JobSpec(owner=owner, kind=REID_KIND, inputs=[{"name": Path(data_path).name or "data", "path": data_path}],
                   model=config.name, chunk_size=1,
                   options={"config": asdict(config), "identities": identities, "license": license,
                            "replace": replace_model})


def publish(store: JobStore, job_id: str, settings, replace: bool = False):
    """Install the model a finished job trained but did not install (a public Space keeps a
    visitor's model theirs until its owner publishes it); returns the installed spec.

    Raises:
        ValueError: the job has no finished model, or the name is taken.
    """
    from wildspace.hub.specs import load_spec_file
    from wildspace.train.export import ExportedModel, install_model

    result = store.result(job_id) or {}
    folder = Path(result.get("model_folder") or "")
    name = result.get("model")
    if not name or not folder.is_dir():
        raise UsageError(f"job {job_id} has no finished model to publish")
    spec = load_spec_file(folder / f"{name}.yaml")
    weights = folder / spec.weights.filename
    return install_model(ExportedModel(folder, spec, weights), settings, replace=replace)


def _work_dir(store: JobStore, job_id: str) -> Path:
    if store.files.local:
        return Path(store._dir(job_id, "train"))
    return Path(tempfile.gettempdir()) / "wildspace-train" / job_id


def _sync(store: JobStore, job_id: str, work: Path, up: bool, names=_SYNCED) -> None:
    if store.files.local:
        return
    for name in names:
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
        raise UsageError("the zip has no images inside class folders (expected <class>/<image>.jpg)")
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label"])
        w.writerows(rows)
    return str(table)


def find_identity_table(names) -> str | None:
    """The zip member (relative name) that is ``identities.csv`` at the root or one folder
    down; raises ``ValueError`` when several are."""
    from pathlib import PurePosixPath

    found = sorted((n for n in names if PurePosixPath(n).name.lower() == REID_TABLE
                    and len(PurePosixPath(n).parts) <= 2), key=lambda n: (len(PurePosixPath(n).parts), n))
    if len(found) > 1 and len(PurePosixPath(found[0]).parts) == len(PurePosixPath(found[1]).parts):
        raise UsageError(f"the zip has several {REID_TABLE} files ({', '.join(found[:3])}); keep one")
    return found[0] if found else None


NO_TABLE = (f"the zip has no {REID_TABLE} at its top level or one folder down (columns: file, identity, "
            "optional bbox; file paths relative to the CSV)")


def check_identity_table(folder: Path, table: Path, inside: bool) -> None:
    """Clear errors before training: files the CSV names that are missing (or, for an
    unpacked zip, ``inside``, outside it) and fewer than two identities."""
    from wildspace.reid.build import read_identity_table

    rows = read_identity_table(table)
    root = folder.resolve()
    if inside:
        outside = [r.file for r in rows if not (root / r.file).resolve().is_relative_to(root)]
        if outside:
            raise UsageError(f"{REID_TABLE} names {len(outside)} file(s) outside the zip: {', '.join(outside[:5])}")
    missing = [r.file for r in rows if not (folder / r.file).is_file()]
    if missing:
        raise UsageError(f"{REID_TABLE} names {len(missing)} file(s) not found " + ("in the zip" if inside else
                         f"under {folder}") + " (paths are relative to the CSV): "
                         + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
    ids = sorted({r.identity for r in rows})
    if len(ids) < 2:
        raise UsageError(f"re-ID training needs at least two identities in {REID_TABLE} (found {len(ids)}: "
                         f"{', '.join(ids)})")


def _reid_data(store: JobStore, job_id: str, spec: JobSpec, work: Path) -> tuple[str, str]:
    """``(images folder, identities CSV)`` on this machine; a zip is unpacked safely into
    ``work`` once (a resumed job on the same machine reuses it)."""
    import json
    import shutil

    path = store.local_input(job_id, spec.inputs[0]["path"], work / "inputs")
    if Path(path).suffix.lower() != ".zip":
        table = spec.options.get("identities") or str(Path(path) / REID_TABLE)
        if not Path(path).is_dir():
            raise NotFound(f"image folder not found: {path}")
        if not Path(table).is_file():
            raise NotFound(f"identities CSV not found: {table}")
        check_identity_table(Path(path), Path(table), inside=False)
        return str(path), str(table)
    from wildspace.media.archives import unpack_uploads
    from wildspace.media.images import IMAGE_EXTENSIONS

    marker = work / "reid-data.json"
    if marker.is_file():
        known = json.loads(marker.read_text(encoding="utf-8"))
        if Path(known["identities"]).is_file():
            return known["images"], known["identities"]
    shutil.rmtree(work / "data", ignore_errors=True)
    unpacked = unpack_uploads([path], work / "data", extensions=IMAGE_EXTENSIONS | {".csv"})
    if not unpacked.files and unpacked.failures:
        raise UsageError(f"{spec.inputs[0]['name']}: {unpacked.failures[0][1]}")
    member = find_identity_table([name for _, name in unpacked.files])
    if member is None:
        raise UsageError(NO_TABLE)
    table = next(p for p, name in unpacked.files if name == member)
    check_identity_table(table.parent, table, inside=True)
    known = {"images": str(table.parent), "identities": str(table)}
    marker.write_text(json.dumps(known), encoding="utf-8")
    return known["images"], known["identities"]


def _run_reid(store: JobStore, job_id: str, spec: JobSpec, work: Path, settings, on_epoch, tick) -> dict:
    import json

    from wildspace.train.reid import ReidConfig
    from wildspace.train.reid_run import run_reid

    opts = spec.options
    images, table = _reid_data(store, job_id, spec, work)
    config = replace(ReidConfig(**opts["config"]), images=images, identities=table, out_dir=str(work))
    s = run_reid(config, settings, license=opts.get("license", "unknown"), replace=bool(opts.get("replace")),
                 install=bool(opts.get("install", True)), on_epoch=on_epoch, tick=tick)
    if s["state"] != "done":
        return s
    s["epochs_done"] = config.epochs
    return json.loads(json.dumps(s, default=str))  # plain JSON (numpy numbers from the kNN search)


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
    synced = _REID_SYNCED if spec.kind == REID_KIND else _SYNCED
    _sync(store, job_id, work, up=False, names=synced)
    opts = spec.options
    settings = ctx.service.settings

    def tick() -> bool:
        renew()
        return ctx.stop.is_set() or store.cancelled(job_id)

    def on_epoch(log: dict) -> None:
        _sync(store, job_id, work, up=True, names=synced)
        store.put_progress(job_id, log)

    try:
        if spec.kind == REID_KIND:
            summary = _run_reid(store, job_id, spec, work, settings, on_epoch, tick)
        else:
            config = replace(TrainConfig(**opts["config"]), data=_training_data(store, job_id, spec, work),
                             out_dir=str(work), images_dir=None)
            summary = run_classifier(config, settings, Hooks(on_epoch=on_epoch, tick=tick),
                                     license=opts.get("license", "unknown"), replace=bool(opts.get("replace")),
                                     install=bool(opts.get("install", True)))
    except USER_ERRORS as exc:  # bad data or settings: a clear failure, not a retry loop
        result = {"state": "failed", "error": exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)}
        store.put_result(job_id, result)
        return result
    if summary["state"] != "done":
        return None
    store.put_result(job_id, summary)
    return summary
