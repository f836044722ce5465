"""Start the wildspace Gradio app: ``python app.py`` (also the Hugging Face Space entry point).

With the embedded queue (the default) the app also runs a local worker for detection batches,
so this one process is a working system; training jobs never run inside the app process (a
separate ``python -m wildspace worker`` takes them; the app starts one itself when training
is allowed and the queue is embedded). With ``WILDSPACE_QUEUE=redis://…`` separate workers do
the queued work.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

from wildspace.settings import load_settings  # noqa: E402

SETTINGS = load_settings()
# Gradio's upload cache lives under the work dir too, so one budget and one expiry cover it
os.environ.setdefault("GRADIO_TEMP_DIR", str(SETTINGS.work_dir / "gradio"))

from wildspace.jobs.queue import JobQueue, start_local_worker  # noqa: E402
from wildspace.services.detectors import DetectorService  # noqa: E402
from wildspace.ui.app import build_app, launch_options, mcp_available, queue_options, start_housekeeping  # noqa: E402


def start_training_worker(queue: JobQueue) -> None:
    """A separate worker process for training jobs (stopped with the app)."""
    import atexit
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "wildspace", "worker", "--only", "train", "--queue", queue.url])
    atexit.register(proc.terminate)


def main() -> None:
    service = DetectorService(SETTINGS, device=SETTINGS.device)
    queue = JobQueue(service.settings)
    if queue.url.startswith("sqlite") or SETTINGS.local_worker:
        start_local_worker(queue, service, only="detect")  # training never runs in this process
        if SETTINGS.allow_training:
            start_training_worker(queue)
    demo = build_app(service, queue=queue, queue_above=SETTINGS.queue_above)
    start_housekeeping(demo)  # a restart first deletes what is stale
    demo.queue(**queue_options(SETTINGS)).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        **launch_options(service),
        mcp_server=mcp_available(),  # the same functions become tools for AI assistants
    )


if __name__ == "__main__":
    main()
