"""The *Train* tab: train a classifier, or an individual re-ID embedder, on your own photos
as a queued job, no code needed."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from wildspace.errors import UsageError
from wildspace.jobs.store import JobNotFound
from wildspace.ui.identity import logged_in, owner_of, private_owner

ARCHS = ["resnet18", "resnet34", "resnet50", "efficientnet_b0", "mobilenetv3_small_100", "convnext_tiny"]
HELP = """Train your own classifier. Upload a **zip of class folders** (one folder per class, e.g.
`ivory/…jpg`, `non_ivory/…jpg`), choose the settings and press *Start training*. Training runs
on the worker queue: it keeps going if you close the page, and a stopped worker resumes from
the last finished epoch. A held-out part of your photos (20 %) measures the accuracy; the
finished model appears in the app under its name (a *products* model in the Products tab).
Start from ImageNet (recommended): the network begins with weights learnt on ImageNet (pinned,
checked files; resnet18, resnet50, efficientnet_b0, convnext_tiny have them, the others start
from random weights), so a few hundred photos go a long way. An offline machine needs the weights
imported first (`python -m wildspace models import`; the job's error names the command)."""
START_IMAGENET, START_RANDOM = "start from ImageNet (recommended)", "random weights"
START_INIT = {START_IMAGENET: "auto", START_RANDOM: "none"}
REID_BACKBONES = ["resnet18", "resnet50", "efficientnet_b0", "convnext_tiny", "vit_small_patch16_224"]
REID_HELP = """Train an **individual re-ID embedder** (which animal is this?). Upload a **zip of photos
with an `identities.csv`** at its top level (or one folder down) with the columns `file` (the
photo's path relative to the CSV), `identity` (the animal) and optionally `bbox` (x, y, w, h,
normalised). At least two animals, ideally several photos each. A held-out quarter of each
animal's photos measures top-1 and mAP. Like classifier training, it runs as a resumable job on
the worker queue. The finished embedder is a model you can build individual-ID galleries with."""
CLASSIFIER, REID = "classifier", "individual re-ID embedder"
TRAINING_OFF = ("Training is off on this public Space. Its owner can turn it on for logged-in visitors with "
                "`WILDSPACE_ALLOW_TRAINING=1`; or run wildspace on your own machine "
                "(`python -m wildspace train …`).")
NEED_LOGIN = "Log in with Hugging Face (button at the top) to train models on this public Space."


def check_training_allowed(settings, owner: str, arch: str, allowed: list[str]) -> None:
    """The app's training policy: on a public Space training needs the Space owner's opt-in and a
    Hugging Face login; only the listed architectures are accepted (the CLI takes any)."""
    if not settings.allow_training:
        raise gr.Error(TRAINING_OFF)
    if settings.public_space and not logged_in(owner):
        raise gr.Error(NEED_LOGIN)
    if arch not in allowed:
        raise gr.Error(f"network '{arch}' is not offered here; choose one of: {', '.join(allowed)}")


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"ivory=elephant_ivory, non_ivory=non_wildlife"`` → mapping (clear error otherwise)."""
    out = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UsageError(f"'{part}' is not OLD=NEW (e.g. ivory=elephant_ivory)")
        old, new = (x.strip() for x in part.split("=", 1))
        out[old] = new
    return out


def submit_training(queue, owner: str, upload: str | None, folder: str | None, name: str, arch: str,
                    epochs: int, loss: str, input_size: int, kind: str, label_map: str,
                    allow_folders: bool, start: str = START_IMAGENET) -> str:
    """Queue a training job; returns its id. Raises ``gr.Error`` with the reason on bad input."""
    from wildspace.hub.specs import model_name
    from wildspace.jobs.training import training_spec
    from wildspace.train.classifier import TrainConfig

    try:
        if upload:
            if Path(upload).suffix.lower() != ".zip":
                raise UsageError("upload a .zip of class folders")
            source = upload
        elif folder and allow_folders:
            if not Path(folder).is_dir():
                raise UsageError(f"folder not found on the server: {folder}")
            source = str(Path(folder).absolute())
        else:
            raise UsageError("upload a zip of class folders" + (" or give a folder" if allow_folders else ""))
        name = model_name(name or Path(source).stem)
        config = TrainConfig(data=source, out_dir="", name=name, arch=arch, epochs=int(epochs), loss=loss,
                             input_size=int(input_size), kind=kind, label_map=parse_label_map(label_map),
                             init=START_INIT.get(start, "auto"))
        return _submit(queue, training_spec(owner, source, config), upload)
    except (ValueError, FileNotFoundError) as exc:
        raise gr.Error(str(exc)) from None


def _submit(queue, spec, upload: str | None) -> str:
    """Queue a training job; an uploaded zip is kept in the job's storage (workers may be elsewhere).
    On a public Space the finished model is not installed for everyone: it stays the trainer's
    (in the job's folder) until the Space owner publishes it (``train publish``)."""
    from dataclasses import replace

    if queue.settings.public_space:
        spec = replace(spec, options={**spec.options, "install": False})
    if upload:
        spec = replace(spec, inputs=[{"name": "data.zip", "path": "stored:inputs/data.zip"}])
        queue.store.put_input(spec.id, Path(upload), "data.zip")
    return queue.submit(spec)


def submit_reid_training(queue, owner: str, upload: str | None, folder: str | None, identities: str | None,
                         name: str, backbone: str, loss: str, metric: str, epochs: int, input_size: int,
                         allow_folders: bool, start: str = START_IMAGENET) -> str:
    """Queue a re-ID embedder training job; returns its id. Raises ``gr.Error`` on bad input
    (checked here when cheap: zip layout, backbone, settings; the worker checks the rest)."""
    from wildspace.hub.specs import model_name
    from wildspace.jobs.training import NO_TABLE, find_identity_table, reid_training_spec
    from wildspace.media.archives import is_folder
    from wildspace.train.reid import ReidConfig, build_backbone

    try:
        table = None
        if upload:
            import zipfile

            if Path(upload).suffix.lower() != ".zip":
                raise UsageError("upload a .zip of images with identities.csv")
            try:
                with zipfile.ZipFile(upload) as z:
                    names = [i.filename for i in z.infolist() if not is_folder(i)]
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise UsageError(f"not a readable zip file: {exc}") from None
            if find_identity_table(names) is None:
                raise UsageError(NO_TABLE)
            source = upload
        elif folder and allow_folders:
            if not Path(folder).is_dir():
                raise UsageError(f"folder not found on the server: {folder}")
            source = str(Path(folder).absolute())
            table = str(Path(identities).absolute()) if identities else str(Path(source) / "identities.csv")
            if not Path(table).is_file():
                raise UsageError(f"identities CSV not found: {table}")
        else:
            raise UsageError("upload a zip of images with identities.csv"
                             + (" or give a folder and its CSV" if allow_folders else ""))
        name = model_name(name or Path(source).stem)
        config = ReidConfig(images=source, identities=table or "", out_dir="", name=name, backbone=backbone,
                            loss=loss, metric=metric, epochs=int(epochs), input_size=int(input_size),
                            init=START_INIT.get(start, "auto"))
        config.check()
        import timm

        if not timm.is_model(backbone):
            build_backbone(backbone)  # raises now, with suggestions, rather than on the worker
        from wildspace.hub.specs import SpecRegistry

        if name in SpecRegistry(queue.settings.spec_dirs):
            raise UsageError(f"a model named '{name}' exists already; choose another name")
        return _submit(queue, reid_training_spec(owner, source, config, identities=table), upload)
    except (ValueError, FileNotFoundError) as exc:
        raise gr.Error(str(exc)) from None


def training_status(queue, classifiers, job_id: str | None, owner: str) -> str:
    """A readable status of one training job; a finished model is made known to the app."""
    from wildspace.jobs.training import REID_KIND

    if not job_id:
        return "No training job yet."
    try:
        s = queue.store.status(job_id, owner)
    except JobNotFound:
        return "No such training job among yours."
    progress = queue.store.progress(job_id)
    if s.kind == REID_KIND:
        return _reid_status(queue, s, progress)
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
        if not queue.store.spec(job_id).options.get("install", True):
            lines.append(unpublished(result["model"], job_id))
        else:
            lines.append(f"model **{result['model']}** is ready" + _register(classifiers, result["model"]))
    return "  \n".join(lines)


def unpublished(name: str, job_id: str) -> str:
    return (f"model **{name}** is trained. On this public Space it is not shown to other visitors: the "
            f"Space's owner can publish it with `python -m wildspace train publish {job_id}`.")


def _reid_status(queue, s, progress: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"**{s.model}**: {s.state}, epoch {s.done} of {s.total}"]
    if progress.get("loss") is not None:
        lines.append(f"last epoch: loss {progress['loss']:.4f}")
    result = queue.store.result(s.id) or {}
    if result.get("error"):
        lines.append(f"failed: {result['error']}")
    if result.get("model") and not queue.store.spec(s.id).options.get("install", True):
        lines.append(unpublished(result["model"], s.id))
    elif result.get("model"):
        name = result["model"]
        test = result.get("test")
        if test:
            lines.append(f"held-out top-1 **{fmt(test.get('top1'))}**, mAP {fmt(test.get('mAP'))} "
                         f"({test.get('queries')} held-out photos queried against the training photos)")
        here = (queue.settings.user_specs_dir / f"{name}.yaml").is_file()
        lines.append(f"model **{name}** is ready: build a gallery with `python -m wildspace gallery build "
                     f"--model {name} --images FOLDER --identities CSV --out GALLERY`"
                     + ("" if here else " (the model is installed on the worker's machine)"))
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


def build_tab(queue, classifiers, owner_state, products_model=None, guard=None) -> gr.Textbox | None:
    """The tab; ``products_model`` (the Products tab's dropdown) gets new products models.
    Where training is off (a public Space without ``WILDSPACE_ALLOW_TRAINING=1``) the tab only
    says so and no training endpoint exists.

    Returns the *Training job* field (``None`` where training is off): the tab shows the status
    of the job in it every few seconds, so another tab that queues training (Review's *Train in
    the Train tab's queue*) puts its job there for the Train tab to follow."""
    from wildspace.train.reid import METRICS, REID_LOSSES

    settings = queue.settings
    if not settings.allow_training:
        gr.Markdown(TRAINING_OFF, elem_id="train-off")
        return None
    allow_folders = not settings.public_space  # on a public Space, uploads only
    what = gr.Radio([CLASSIFIER, REID], value=CLASSIFIER, label="What to train", elem_id="train-what")
    with gr.Column(visible=True) as classifier_box:
        gr.Markdown(HELP)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Zip of class folders", file_types=[".zip"], type="filepath",
                                 elem_id="train-upload")
                folder = gr.Textbox(label="…or a folder on this machine", visible=allow_folders,
                                    elem_id="train-folder")
                name = gr.Textbox(label="Model name", placeholder="e.g. my-ivory-model", elem_id="train-name")
                kind = gr.Radio(["species", "products"], value="species", label="Kind of model")
                label_map = gr.Textbox(label="Rename classes (products need taxonomy labels)",
                                       placeholder="ivory=elephant_ivory, non_ivory=non_wildlife")
            with gr.Column():
                arch = gr.Dropdown(ARCHS, value="resnet18", label="Network")
                epochs = gr.Slider(1, 100, value=10, step=1, label="Epochs")
                loss = gr.Radio(["ce", "focal", "asymmetric-focal"], value="ce", label="Loss")
                size = gr.Slider(64, 384, value=160, step=32, label="Input size (px)")
                init = gr.Radio(list(START_INIT), value=START_IMAGENET, label="Starting weights")
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
    with gr.Column(visible=False) as reid_box:
        gr.Markdown(REID_HELP)
        with gr.Row():
            with gr.Column():
                r_upload = gr.File(label="Zip of photos with identities.csv", file_types=[".zip"], type="filepath",
                                   elem_id="train-reid-upload")
                r_folder = gr.Textbox(label="…or a folder on this machine", visible=allow_folders,
                                      elem_id="train-reid-folder")
                r_table = gr.Textbox(label="…and its identities CSV (default: identities.csv in the folder)",
                                     visible=allow_folders, elem_id="train-reid-csv")
                r_name = gr.Textbox(label="Model name", placeholder="e.g. my-tiger-embedder",
                                    elem_id="train-reid-name")
            with gr.Column():
                r_backbone = gr.Dropdown(REID_BACKBONES, value="resnet18", label="Backbone (timm)")
                r_loss = gr.Radio(list(REID_LOSSES), value="triplet", label="Loss")
                r_metric = gr.Radio(list(METRICS), value="cosine", label="Distance")
                r_epochs = gr.Slider(1, 100, value=10, step=1, label="Epochs")
                r_size = gr.Slider(32, 384, value=128, step=32, label="Input size (px)")
                r_init = gr.Radio(list(START_INIT), value=START_IMAGENET, label="Starting weights")
                r_start = gr.Button("Start re-ID training", variant="primary", elem_id="train-reid-start")
    job = gr.Textbox(label="Training job", interactive=False, elem_id="train-job")
    status = gr.Markdown(elem_id="train-status")
    timer = gr.Timer(3.0)

    def _show(choice):
        return gr.update(visible=choice != REID), gr.update(visible=choice == REID)

    what.change(_show, [what], [classifier_box, reid_box], api_name=False, show_progress="hidden")  # type: ignore[arg-type]  # gradio takes False: private

    def _admit(arch: str, allowed: list[str], token, request) -> str:
        owner = private_owner(request, token)
        check_training_allowed(settings, owner, arch, allowed)
        if guard is not None:
            guard.check_jobs(queue, owner)
        return owner

    def train_classifier(up, fo, nm, ar, ep, lo, sz, ki, lm, st=START_IMAGENET, token=None,
                         request: gr.Request | None = None):
        """Queue training of an image classifier on a zip of class folders (see the Train tab)."""
        owner = _admit(ar, ARCHS, token, request)
        job_id = submit_training(queue, owner, up, fo, nm, ar, ep, lo, sz, ki, lm, allow_folders, st)
        return job_id, training_status(queue, classifiers, job_id, owner)

    def train_reid(up, fo, table, nm, bb, lo, me, ep, sz, st=START_IMAGENET, token=None,
                   request: gr.Request | None = None):
        """Queue training of an individual re-ID embedder on a zip of photos with identities.csv."""
        owner = _admit(bb, REID_BACKBONES, token, request)
        job_id = submit_reid_training(queue, owner, up, fo, table, nm, bb, lo, me, ep, sz, allow_folders, st)
        return job_id, training_status(queue, classifiers, job_id, owner)

    def _status(job_id, token, request: gr.Request):
        text = training_status(queue, classifiers, job_id, owner_of(request, token))
        if products_model is None or classifiers is None:
            return text, gr.update()
        return text, gr.update(choices=classifiers.names("products"))

    start.click(train_classifier, [upload, folder, name, arch, epochs, loss, size, kind, label_map, init,
                                   owner_state],
                [job, status], api_name="train_classifier")
    r_start.click(train_reid, [r_upload, r_folder, r_table, r_name, r_backbone, r_loss, r_metric, r_epochs,
                                r_size, r_init, owner_state], [job, status], api_name="train_reid")
    outputs = [status, products_model if products_model is not None else gr.State()]
    timer.tick(_status, [job, owner_state], outputs, api_name=False, show_progress="hidden")  # type: ignore[arg-type]  # gradio takes False: private
    return job
