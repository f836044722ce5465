"""The *Train* tab: train a classifier on your own photos as a queued job, no code needed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import gradio as gr

from wildspace.jobs.store import JobNotFound
from wildspace.ui.identity import owner_of

ARCHS = ["resnet18", "resnet34", "resnet50", "efficientnet_b0", "mobilenetv3_small_100", "convnext_tiny"]
HELP = """Train your own classifier. Upload a **zip of class folders** (one folder per class, e.g.
`ivory/…jpg`, `non_ivory/…jpg`), choose the settings and press *Start training*. Training runs
on the worker queue: it keeps going if you close the page, and a stopped worker resumes from
the last finished epoch. A held-out part of your photos (20 %) measures the accuracy; the
finished model appears in the app under its name (a *products* model in the Products tab).
Networks start from random weights unless you point to weights (offline: nothing is downloaded),
so use many photos per class or expect modest accuracy."""


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"ivory=elephant_ivory, non_ivory=non_wildlife"`` → mapping (clear error otherwise)."""
    out = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"'{part}' is not OLD=NEW (e.g. ivory=elephant_ivory)")
        old, new = (x.strip() for x in part.split("=", 1))
        out[old] = new
    return out


def submit_training(queue, owner: str, upload: str | None, folder: str | None, name: str, arch: str,
                    epochs: int, loss: str, input_size: int, kind: str, label_map: str,
                    allow_folders: bool) -> str:
    """Queue a training job; returns its id. Raises ``gr.Error`` with the reason on bad input."""
    from wildspace.train.classifier import TrainConfig
    from wildspace.train.cli import model_name
    from wildspace.train.job import training_spec

    try:
        if upload:
            if Path(upload).suffix.lower() != ".zip":
                raise ValueError("upload a .zip of class folders")
            source = upload
        elif folder and allow_folders:
            if not Path(folder).is_dir():
                raise ValueError(f"folder not found on the server: {folder}")
            source = str(Path(folder).absolute())
        else:
            raise ValueError("upload a zip of class folders" + (" or give a folder" if allow_folders else ""))
        name = model_name(name or Path(source).stem)
        config = TrainConfig(data=source, out_dir="", name=name, arch=arch, epochs=int(epochs), loss=loss,
                             input_size=int(input_size), kind=kind, label_map=parse_label_map(label_map))
        spec = training_spec(owner, source, config)
        if upload:  # the workers may be elsewhere: keep the zip in the job's storage
            from dataclasses import replace

            spec = replace(spec, inputs=[{"name": "data.zip", "path": "stored:inputs/data.zip"}])
            queue.store.put_input(spec.id, Path(upload), "data.zip")
        return queue.submit(spec)
    except (ValueError, FileNotFoundError) as exc:
        raise gr.Error(str(exc)) from None


def training_status(queue, classifiers, job_id: str | None, owner: str) -> str:
    """A readable status of one training job; a finished model is made known to the app."""
    if not job_id:
        return "No training job yet."
    try:
        s = queue.store.status(job_id, owner)
    except JobNotFound:
        return "No such training job among yours."
    progress = queue.store.progress(job_id)
    lines = [f"**{s.model}**: {s.state}, epoch {s.done} of {s.total}"]
    if progress.get("train_loss") is not None:
        val = (f", validation accuracy {progress['val_accuracy']:.2f}" if "val_accuracy" in progress else "")
        lines.append(f"last epoch: training loss {progress['train_loss']:.3f}{val}")
    result = queue.store.result(job_id) or {}
    if result.get("error"):
        lines.append(f"failed: {result['error']}")
    if result.get("model"):
        test = result.get("test") or {}
        if test:
            lines.append(f"held-out accuracy **{test['accuracy']:.2f}** on {test['samples']} photos "
                         f"(macro {test['macro_accuracy']:.2f})")
        lines.append(f"model **{result['model']}** is ready" + _register(classifiers, result["model"]))
    return "  \n".join(lines)


def _register(classifiers, name: str) -> str:
    from wildspace.hub.specs import load_spec_file

    if classifiers is None:
        return "."
    if name not in classifiers.registry:
        path = classifiers.settings.user_specs_dir / f"{name}.yaml"
        if not path.is_file():
            return " (on the worker's machine; restart the app there to use it)."
        classifiers.registry.add(load_spec_file(path))
    kind = classifiers.registry.get(name).extra.get("kind", "species")
    return " in the Products tab." if kind == "products" else " as a species classifier."


def build_tab(queue, classifiers, owner_state, products_model=None) -> None:
    """The tab; ``products_model`` (the Products tab's dropdown) gets new products models."""
    allow_folders = not os.environ.get("SPACE_ID")  # on a public Space, uploads only
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Zip of class folders", file_types=[".zip"], type="filepath",
                             elem_id="train-upload")
            folder = gr.Textbox(label="…or a folder on this machine", visible=allow_folders, elem_id="train-folder")
            name = gr.Textbox(label="Model name", placeholder="e.g. my-ivory-model", elem_id="train-name")
            kind = gr.Radio(["species", "products"], value="species", label="Kind of model")
            label_map = gr.Textbox(label="Rename classes (products need taxonomy labels)",
                                   placeholder="ivory=elephant_ivory, non_ivory=non_wildlife")
        with gr.Column():
            arch = gr.Dropdown(ARCHS, value="resnet18", label="Network", allow_custom_value=True)
            epochs = gr.Slider(1, 100, value=10, step=1, label="Epochs")
            loss = gr.Radio(["ce", "focal", "asymmetric-focal"], value="ce", label="Loss")
            size = gr.Slider(64, 384, value=160, step=32, label="Input size (px)")
            start = gr.Button("Start training", variant="primary", elem_id="train-start")
    job = gr.Textbox(label="Training job", interactive=False, elem_id="train-job")
    status = gr.Markdown(elem_id="train-status")
    timer = gr.Timer(3.0)

    def _start(up, fo, nm, ar, ep, lo, sz, ki, lm, token, request: gr.Request):
        owner = owner_of(request, token)
        job_id = submit_training(queue, owner, up, fo, nm, ar, ep, lo, sz, ki, lm, allow_folders)
        return job_id, training_status(queue, classifiers, job_id, owner)

    def _status(job_id, token, request: gr.Request):
        text = training_status(queue, classifiers, job_id, owner_of(request, token))
        if products_model is None or classifiers is None:
            return text, gr.update()
        return text, gr.update(choices=classifiers.names("products"))

    start.click(_start, [upload, folder, name, arch, epochs, loss, size, kind, label_map, owner_state],
                [job, status], api_name="train_classifier")
    outputs = [status, products_model if products_model is not None else gr.State()]
    timer.tick(_status, [job, owner_state], outputs, api_name=False, show_progress="hidden")
