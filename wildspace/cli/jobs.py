"""``python -m wildspace worker`` and ``python -m wildspace jobs …``."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import threading
from pathlib import Path

from wildspace.cli.common import (
    BACKEND_HELP,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_THRESHOLD,
    PRECISION_HELP,
    fraction_arg,
    positive_arg,
)
from wildspace.errors import NotFound, UsageError


def add_parsers(sub) -> None:
    w = sub.add_parser("worker", help="run a queue worker (one per GPU)")
    w.add_argument("--queue", help="redis://host:port/db or sqlite:///path "
                   "(default: WILDSPACE_QUEUE or the embedded queue)")
    w.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (pin one worker per GPU)")
    w.add_argument("--concurrency", type=positive_arg, default=1, help="jobs processed at once")
    w.add_argument("--batch-size", type=positive_arg, default=None,
                   help="images per forward pass (default: chosen for the detector and device)")
    w.add_argument("--backend", choices=["torch", "onnx", "auto"], help=BACKEND_HELP)
    w.add_argument("--precision", choices=["fp32", "bf16", "auto"], help=PRECISION_HELP)
    w.add_argument("--only", choices=["detect", "train"], help="take only detection batches or only training "
                   "jobs (default: both; the app starts a `--only train` worker beside itself)")

    j = sub.add_parser("jobs", help="submit and follow queued batches")
    j.add_argument("--queue", help="queue URL (default: WILDSPACE_QUEUE or the embedded queue)")
    j.add_argument("--owner", default=None, help="job owner (default: WILDSPACE_OWNER or cli:<user>)")
    jsub = j.add_subparsers(dest="jobs_command", required=True)
    js = jsub.add_parser("submit", help="queue a detection batch; prints the job id")
    jsrc = js.add_mutually_exclusive_group()
    jsrc.add_argument("--model", help=f"model name (default {DEFAULT_MODEL})")
    jsrc.add_argument("--weights", type=Path, help="a local detector checkpoint")
    js.add_argument("--threshold", type=fraction_arg, default=DEFAULT_OUTPUT_THRESHOLD)
    js.add_argument("--image-size", type=positive_arg)
    js.add_argument("--chunk-size", type=positive_arg, default=16, help="inputs per queue task")
    js.add_argument("paths", nargs="+", type=Path, help="images, folders, .txt lists or .zip archives")
    jst = jsub.add_parser("status", help="state, done/total, failures")
    jst.add_argument("id")
    jst.add_argument("--json", action="store_true")
    jr = jsub.add_parser("result", help="write the results (MD JSON, or another export)")
    jr.add_argument("id")
    jr.add_argument("--output", "-o", type=Path, required=True,
                    help=".json for MegaDetector JSON; a folder with --format for other exports")
    jr.add_argument("--format", choices=["md-json", "csv", "coco", "camtrap-dp", "crops", "sorted"],
                    default="md-json")
    jr.add_argument("--threshold", type=fraction_arg, default=0.2, help="threshold for other exports")
    jc = jsub.add_parser("cancel", help="stop a job (within one item)")
    jc.add_argument("id")
    jsub.add_parser("list", help="your jobs")


def default_owner(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if os.environ.get("WILDSPACE_OWNER"):
        return os.environ["WILDSPACE_OWNER"]
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def unique_inputs(files) -> list[dict]:
    """``[{"name", "path"}]`` with names made unique (the name is the result's key)."""
    from wildspace.media.archives import unique_name

    seen: set[str] = set()
    return [{"name": unique_name(name, seen), "path": str(Path(path).absolute())} for path, name in files]


def cmd_worker(args: argparse.Namespace) -> int:
    stopping = threading.Event()

    def stop(signum, frame):  # finish the item in hand, leave the rest for the next worker
        stopping.set()

    # before the slow imports: a stop during start-up is a clean exit too
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from wildspace.jobs.queue import JobQueue, WorkerContext
    from wildspace.services.detectors import DetectorService

    queue = JobQueue(url=args.queue)
    ctx = WorkerContext(service=DetectorService(device=args.device, backend=args.backend,
                                                precision=getattr(args, "precision", None)),
                        batch_size=args.batch_size, stop=stopping)
    if stopping.is_set():
        return 0
    consumer = queue.consumer(ctx, args.concurrency, getattr(args, "only", None))
    consumer.start()
    queue.start_recovery_loop(ctx.stop)
    print(f"worker {ctx.worker_id} on {args.device}, queue {queue.url}, storage {queue.store.root}",
          file=sys.stderr, flush=True)
    while not ctx.stop.wait(0.5):
        pass
    consumer.stop(graceful=True)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from wildspace.jobs.queue import JobQueue
    from wildspace.jobs.store import JobSpec, status_dict

    queue = JobQueue(url=args.queue)
    store = queue.store
    owner = default_owner(args.owner)
    c = args.jobs_command
    if c == "submit":
        from wildspace.media.images import list_images

        if args.weights is not None and not args.weights.is_file():
            raise NotFound(f"weights file not found: {args.weights}")
        zips = [p for p in args.paths if p.suffix.lower() == ".zip"]
        inputs = unique_inputs(list_images([p for p in args.paths if p not in zips]))
        job_id = store.new_id()
        refused: list[tuple[str, str]] = []
        if zips:  # members checked like app uploads (zip-slip, links, bombs, WILDSPACE_MAX_*)
            import tempfile

            from wildspace.runs.batch import stage_uploads

            with tempfile.TemporaryDirectory(prefix="wildspace-zips-") as tmp:
                staged, refused = stage_uploads(store, job_id, zips, Path(tmp), queue.settings.limits.upload_limits(),
                                                seen={i["name"] for i in inputs})
            inputs += staged + [{"name": name, "path": ""} for name, _ in refused]
        if not inputs:
            raise UsageError("no images found in the given paths")
        spec = JobSpec(owner=owner, kind="detect-images", inputs=inputs, id=job_id,
                       model=None if args.weights else (args.model or DEFAULT_MODEL),
                       weights=str(args.weights.absolute()) if args.weights else None,
                       threshold=args.threshold, image_size=args.image_size, chunk_size=args.chunk_size)
        from wildspace.runs.batch import submit_with_refused

        print(submit_with_refused(queue, spec, refused))
        return 0
    if c == "list":
        for s in store.list(owner):
            print(f"{s.id}  {s.state:<9} {s.done}/{s.total}  failures {s.failures}  {s.created[:19]}  {s.model}")
        return 0
    if c == "status":
        s = store.status(args.id, owner)
        if args.json:
            print(json.dumps(status_dict(s)))
        else:
            print(f"{s.state}: {s.done}/{s.total} done, {s.failures} failed")
        return 0
    if c == "cancel":
        store.cancel(args.id, owner)
        print(f"cancel requested for {args.id}")
        return 0
    # result: everything done so far (all of it once the job is done)
    import tempfile

    from wildspace.formats.megadetector import read_results, write_results
    from wildspace.runs.batch import job_output

    s = store.status(args.id, owner)
    if args.format == "md-json":
        doc = read_results(store.document(args.id))
        write_results(doc, args.output)
        print(f"{s.state}: {len(doc['images'])}/{s.total} images -> {args.output}")
        return 0
    with tempfile.TemporaryDirectory(prefix="wildspace-result-") as tmp:
        out = job_output(store, args.id, owner, Path(tmp), args.threshold, [args.format])
        args.output.mkdir(parents=True, exist_ok=True)
        target = args.output / out.exports[args.format].name
        import shutil

        shutil.move(str(out.exports[args.format]), target)
        if args.format == "camtrap-dp":  # the zip, plus the unpacked package beside it
            pkg = out.exports[args.format].with_suffix("")
            if pkg.is_dir():
                shutil.copytree(pkg, args.output / pkg.name, dirs_exist_ok=True)
    print(f"{s.state}: {len(out.results)}/{s.total} images -> {target}")
    return 0


COMMANDS = {"worker": cmd_worker, "jobs": cmd_jobs}
