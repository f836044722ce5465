"""Do one chunk of a job: detect on the inputs not yet done, record each result at once."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Generator, cast

from wildspace.detect.pipeline import detect_files
from wildspace.formats.megadetector import detector_metadata
from wildspace.jobs.store import JobStore
from wildspace.types import ImageResult


def run_chunk(store: JobStore, job_id: str, chunk: int, ctx, renew: Callable[[], bool]) -> int:
    """Process chunk ``chunk`` of job ``job_id``; returns how many items this call recorded.

    Stops after the item in hand when the job is cancelled or the worker is asked to stop.
    """
    spec = store.spec(job_id)
    indexes = [i for i in spec.chunks()[chunk] if not store.has_item(job_id, i)]
    if not indexes or store.cancelled(job_id):
        return 0
    service = ctx.service
    if spec.weights:
        detector = service.load(weights=spec.weights, image_size=spec.image_size)
    else:
        detector = service.load(name=spec.model, image_size=spec.image_size)
    renew()  # loading a model can take a while; keep the chunk ours
    info = detector.info
    store.put_detector(job_id, info.labels, info.extra.get("file", info.name),
                       detector_metadata(info, spec.threshold))
    by_name = {spec.inputs[i]["name"]: i for i in indexes}
    cache = Path(tempfile.gettempdir()) / "wildspace-job-inputs"
    files = [(store.local_input(job_id, spec.inputs[i]["path"], cache), spec.inputs[i]["name"])
             for i in indexes]
    recorded = 0
    # detect_files is a generator function (its annotation says Iterator): closed below
    results = cast(Generator[ImageResult, None, None], detect_files(
        detector, files, spec.threshold, batch_size=ctx.batch_size, max_pixels=service.settings.max_pixels,
        fast_decode=service.settings.fast_decode))
    try:
        for result in results:
            if store.put_item(job_id, by_name[result.file], result, ctx.worker_id):
                recorded += 1
            renew()
            if ctx.stop.is_set() or store.cancelled(job_id):
                break
    finally:
        results.close()
        if not store.files.local:  # copies fetched from remote storage are not kept
            for path, _ in files:
                if cache in path.parents:
                    path.unlink(missing_ok=True)
    return recorded
