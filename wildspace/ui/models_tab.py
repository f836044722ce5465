"""The *Models* tab: which models this app knows and has, and adding your own detector.

Uploading weights is on for a local app and off on a public Space unless the Space's owner
sets ``WILDSPACE_ALLOW_CUSTOM_WEIGHTS=1``; when off, the upload form and its API endpoint do
not exist. An uploaded checkpoint goes through the same checks as ``models import``: its
pickle is scanned and refused if it names code outside the detector families' allowlists,
it is loaded with the restricted loaders, and it becomes a model spec with its sha256.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr

from wildspace.services.detectors import DetectorService
from wildspace.ui.common import user_errors

COLUMNS = ["name", "task", "family", "on this machine", "licence", "source"]
UPLOAD_OFF = ("Adding your own weights is **off** on this public Space. The Space's owner can turn "
              "it on with `WILDSPACE_ALLOW_CUSTOM_WEIGHTS=1`; on your own machine use the app locally "
              "or `python -m wildspace models import FILE --as NAME`.")
UPLOAD_HELP = ("Add a detector: a MegaDetector v5 / YOLOv5 checkpoint or an ultralytics YOLO / RT-DETR "
               "checkpoint (`.pt`). The file is checked before anything in it runs: a checkpoint that "
               "refers to code outside the known detector families is refused. Everyone using this app "
               "sees the models it knows.")


def model_rows(service: DetectorService) -> list[list]:
    return [[m.name, m.task, m.family, "yes" if m.cached else "no", m.license, m.source]
            for m in service.listing()]


def import_detector_file(service: DetectorService, upload: str | None, name: str | None,
                         owner: str | None = None) -> str:
    """Register an uploaded detector checkpoint as ``name``; returns a confirmation.

    On a public Space a new detector changes what every visitor sees, so it needs the Space
    owner's opt-in (``WILDSPACE_ALLOW_CUSTOM_WEIGHTS=1``) and a Hugging Face login.

    Raises:
        gr.Error: uploads are off here, no login, no file or name, or the file is refused.
    """
    from wildspace.hub.specs import model_name
    from wildspace.ui.identity import logged_in

    if not service.settings.allow_custom_weights:
        raise gr.Error(UPLOAD_OFF)
    if service.settings.public_space and not logged_in(owner or ""):
        raise gr.Error("Log in with Hugging Face (button at the top) to add detectors on this public Space.")
    if not upload:
        raise gr.Error("Choose a checkpoint file (.pt) first.")
    src = Path(upload)
    if src.suffix.lower() not in (".pt", ".pth"):
        raise gr.Error(f"'{src.name}' is not a PyTorch checkpoint (.pt or .pth).")
    with user_errors():
        name = model_name(name or src.stem)
        with tempfile.TemporaryDirectory(prefix="wildspace-upload-") as tmp:
            # keep the user's file name (it names the weights in the spec), not Gradio's temp name
            local = Path(tmp) / src.name
            shutil.copyfile(src, local)
            spec = service.import_model(local, name)
    labels = ", ".join(spec.labels)
    return (f"Added **{spec.name}** ({spec.family}, {spec.input_size} px; classes: {labels}). "
            "Choose it in the Detector lists.")


def detector_dropdowns(demo: gr.Blocks) -> list[gr.Dropdown]:
    """The detector pickers built so far (:func:`wildspace.ui.common.model_controls`)."""
    return [b for b in demo.blocks.values()
            if isinstance(b, gr.Dropdown) and b.label == "Detector" and (b.elem_id or "").endswith("-model")]


def build_tab(service: DetectorService, pickers: list[gr.Dropdown], owner_state=None, guard=None) -> None:
    """The tab; ``pickers`` are the other tabs' detector dropdowns, refreshed after an upload."""
    from wildspace.ui.identity import owner_of

    owner_state = owner_state if owner_state is not None else gr.State(None)
    table = gr.Dataframe(value=model_rows(service), headers=COLUMNS, interactive=False, wrap=True,
                         label="Models this app knows", elem_id="models-table")
    if not service.settings.allow_custom_weights:
        gr.Markdown(UPLOAD_OFF, elem_id="models-upload-off")
        return
    gr.Markdown(UPLOAD_HELP)
    with gr.Row():
        upload = gr.File(label="Detector checkpoint (.pt)", file_types=[".pt", ".pth"], type="filepath",
                         elem_id="models-upload")
        name = gr.Textbox(label="Name for it", placeholder="e.g. my-megadetector", elem_id="models-name")
    add = gr.Button("Add detector", variant="primary", elem_id="models-add")
    status = gr.Markdown(elem_id="models-status")

    def import_detector(file, model_name_text, token=None, request: gr.Request | None = None):
        """Add a detector checkpoint (YOLOv5 / MegaDetector v5, ultralytics YOLO or RT-DETR) under a name.

        Args:
            file: the checkpoint (.pt).
            model_name_text: the name to use it by (letters, digits, '-' and '.').
        Returns:
            a confirmation, the updated model table, and the refreshed detector lists.
        """
        owner = owner_of(request, token)
        if guard is not None:
            with guard.fair.heavy(request, "model import"):
                message = import_detector_file(service, file, model_name_text, owner)
        else:
            message = import_detector_file(service, file, model_name_text, owner)
        names = service.detector_names()
        return (message, model_rows(service), *[gr.update(choices=names) for _ in pickers])

    add.click(import_detector, [upload, name, owner_state], [status, table, *pickers], api_name="import_detector")
