"""The *Review* tab: page through a batch, a queued job or an uploaded MD JSON with the
keyboard, correct boxes, species and individuals, and export the corrected results.

Keys (when no text field has the focus): → / ← next / previous image, ``a`` accept the image
as shown, ``r`` reject the selected box, ``e`` mark the image empty, ``m`` a misfire.
Boxes are redrawn or added with two clicks on the image (opposite corners: ``gr.Image``'s
select event gives the pixel) or with numeric fields (x, y, width, height as fractions of the
image: exact); a drawing editor such as ``gr.ImageEditor`` is heavy and its strokes are not boxes.
"""

from __future__ import annotations

import contextlib
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import gradio as gr

from wildspace.errors import UsageError
from wildspace.formats.camtrap_dp import PackageOptions
from wildspace.review import exports as review_exports
from wildspace.review import progress as review_progress
from wildspace.review.session import ReviewService, View, default_reviewer
from wildspace.review.sources import SourceNotFound, Sources, save_upload
from wildspace.review.store import ReviewStores
from wildspace.review.view import ALL, BANDS, STATUSES, Filters
from wildspace.ui import deployments_form
from wildspace.ui.common import new_work_dir, user_errors
from wildspace.ui.free_dropdown import FreeDropdown
from wildspace.ui.identity import private_owner

HELP = """Review what the models found. Choose one of your **batches** (run in the Batch tab),
**videos** (run in the Video tab: frame by frame), **queued jobs** (also while they run: what is
done so far) or **upload** a MegaDetector JSON with its images. Keys: **→ / ←** next / previous,
**a** accept the image as shown (boxes below the threshold are rejected), **r** reject the selected
box, **e** empty, **m** misfire. Draw a box with two clicks on the image (opposite corners; what
they do: *Two clicks on the image*). The threshold only changes what is shown: nothing runs again.
Corrections are saved at once, only you see them."""
DRAW_MODES = [("fill x, y, width, height", "fill"), ("redraw the selected box", "redraw"), ("add a box", "add")]
# media without a capture time: their file time, flagged as such (PackageOptions.missing_times)
REVIEW_PACKAGE = PackageOptions(missing_times="file-time")
KEYS = {"ArrowRight": "review-next", "ArrowLeft": "review-prev", "a": "review-accept", "r": "review-reject",
        "e": "review-empty", "m": "review-misfire"}
KEYS_JS = """() => {
  if (window.__wildspaceReviewKeys) return;
  window.__wildspaceReviewKeys = true;
  const keys = %s;
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    const t = ev.target;
    if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
    const panel = document.getElementById('review-panel');
    if (!panel || panel.offsetParent === null) return;
    const id = keys[ev.key];
    const button = id && document.getElementById(id);
    if (!button) return;
    ev.preventDefault();
    button.click();
  });
}""" % ("{" + ", ".join(f"{k!r}: {v!r}" for k, v in KEYS.items()) + "}")


def make_service(settings, out_dir: Path, queue=None) -> ReviewService:
    """The tab's backend over the app's run folders, queue and data dir."""
    out_dir = Path(out_dir)
    roots = {"batch": out_dir / "batch", "video": out_dir / "video", "review": out_dir / "review"}
    sources = Sources(roots, queue, cache_dir=out_dir / "review" / "job-inputs", max_pixels=settings.max_pixels)
    return ReviewService(sources, ReviewStores(settings.home / "review"), out_dir / "review" / "views",
                         settings.max_pixels)


def _outputs(v: View) -> list:
    bbox = v.bbox or (None, None, None, None)
    return [str(v.image) if v.image else None, v.where + (f"  \n*{v.message}*" if v.message else ""), v.boxes,
            gr.update(choices=v.box_choices, value=v.selected), *bbox,
            gr.update(value=v.species or ""), gr.update(value=v.individual or ""), v.progress]


@contextlib.contextmanager
def _errors():
    """Review mistakes (no box, bad numbers, a foreign or expired source) as app messages."""
    try:
        yield
    except SourceNotFound:
        raise gr.Error("No such source among yours (it may have expired).") from None
    except gr.Error:
        raise
    except (ValueError, TypeError) as exc:
        raise gr.Error(str(exc)) from None


def build_tab(service, out_dir: Path, owner_state, queue=None, guard=None, galleries=None,
              train_job=None) -> ReviewService:
    """The tab (returns its backend, for tests). With ``galleries`` (a GalleryService) the
    selected box can be looked up in an individual gallery: its top matches fill the individual ID.
    ``train_job`` (the Train tab's *Training job* field) gets the id of a training job queued
    here, so the Train tab shows its status."""
    settings = service.settings
    backend = make_service(settings, out_dir, queue)
    review_root = Path(out_dir) / "review"
    gr.Markdown(HELP)
    with gr.Column(elem_id="review-panel"):
        with gr.Row():
            source = FreeDropdown(label="Source", choices=[], allow_custom_value=True, elem_id="review-source",
                                  scale=4)
            refresh = gr.Button("Refresh list", elem_id="review-refresh", scale=1)
            open_btn = gr.Button("Open", variant="primary", elem_id="review-open", scale=1)
        with gr.Accordion("…or upload a MegaDetector JSON with its images", open=False):
            with gr.Row():
                up_json = gr.File(label="MegaDetector JSON", file_types=[".json"], type="filepath",
                                  elem_id="review-upload-json")
                up_images = gr.File(label="Its images (zip or files)", file_count="multiple", type="filepath",
                                    elem_id="review-upload-images")
            up_btn = gr.Button("Open upload", elem_id="review-upload")
        with gr.Row():
            threshold = gr.Slider(0.005, 0.99, value=0.2, step=0.005, label="Review threshold",
                                  info="Changes what is shown at once; the model does not run again.",
                                  elem_id="review-threshold", scale=3)
            uncertain = gr.Checkbox(label="Uncertain first", value=False, elem_id="review-uncertain", scale=1)
        with gr.Row():
            category = gr.Dropdown([ALL], value=ALL, label="Category", elem_id="review-category")
            species_filter = gr.Dropdown([ALL], value=ALL, label="Species", elem_id="review-species-filter")
            band = gr.Dropdown(list(BANDS), value=ALL, label="Top confidence", elem_id="review-band")
            status = gr.Dropdown(list(STATUSES), value=ALL, label="Status", elem_id="review-status")
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(type="filepath", label="Image", interactive=False, elem_id="review-image",
                                 height=560)
                where = gr.Markdown(elem_id="review-where")
            with gr.Column(scale=2):
                with gr.Row():
                    prev = gr.Button("← Previous", elem_id="review-prev", size="sm")
                    nxt = gr.Button("Next →", elem_id="review-next", size="sm")
                with gr.Row():
                    accept = gr.Button("Accept (a)", variant="primary", elem_id="review-accept", size="sm")
                    reject = gr.Button("Reject box (r)", variant="stop", elem_id="review-reject", size="sm")
                    empty = gr.Button("Empty (e)", elem_id="review-empty", size="sm")
                    misfire = gr.Button("Misfire (m)", elem_id="review-misfire", size="sm")
                boxes = gr.Markdown(elem_id="review-boxes")
                box = gr.Dropdown(label="Box", choices=[], elem_id="review-box")
                with gr.Row():
                    accept_box = gr.Button("Accept box", elem_id="review-accept-box", size="sm")
                    delete_box = gr.Button("Delete box", elem_id="review-delete-box", size="sm")
                with gr.Row():
                    bx = gr.Number(label="x", minimum=0, maximum=1, elem_id="review-x", precision=4)
                    by = gr.Number(label="y", minimum=0, maximum=1, elem_id="review-y", precision=4)
                    bw = gr.Number(label="width", minimum=0, maximum=1, elem_id="review-w", precision=4)
                    bh = gr.Number(label="height", minimum=0, maximum=1, elem_id="review-h", precision=4)
                draw_mode = gr.Radio(DRAW_MODES, value="fill", label="Two clicks on the image (opposite corners)",
                                     elem_id="review-draw-mode")
                with gr.Row():
                    redraw = gr.Button("Redraw box", elem_id="review-redraw", size="sm")
                    add_class = gr.Dropdown([], label="New box's category", elem_id="review-add-class")
                    add = gr.Button("Add box", elem_id="review-add", size="sm")
                with gr.Row():
                    species = FreeDropdown(label="Species", choices=[], allow_custom_value=True,
                                           elem_id="review-species")
                    set_species = gr.Button("Set species", elem_id="review-set-species", size="sm")
                with gr.Row():
                    individual = gr.Textbox(label="Individual ID", elem_id="review-individual")
                    set_individual = gr.Button("Set individual", elem_id="review-set-individual", size="sm")
                if galleries is not None:
                    with gr.Row():
                        suggest_gallery = FreeDropdown(choices=galleries.shared_names(), label="Suggest from gallery",
                                                       allow_custom_value=True, scale=3,
                                                       info="The selected box is looked up in this gallery.",
                                                       elem_id="review-suggest-gallery")
                        suggest_btn = gr.Button("Suggest", elem_id="review-suggest", size="sm", scale=1)
                    suggest_note = gr.Markdown(elem_id="review-suggest-note")
                    suggested = gr.Radio([], label="Top matches: click one to fill the individual ID",
                                         elem_id="review-suggestions")
                    suggest_for = gr.State(None)
                reviewer = gr.Textbox(label="Your name (in the exports)", placeholder="optional",
                                      elem_id="review-reviewer")
                progress_md = gr.Markdown(elem_id="review-progress")
        with gr.Accordion("Progress and threshold from your review", open=False):
            pr_btn = gr.Button("Update", elem_id="review-pr")
            pr_plot = gr.Image(type="filepath", label="Precision and recall by threshold", interactive=False,
                               elem_id="review-pr-plot")
            pr_table = gr.Dataframe(headers=["threshold", "precision", "recall", "TP", "FP", "FN"],
                                    interactive=False, elem_id="review-pr-table")
        form = deployments_form.build_form("review")
        with gr.Row():
            export = gr.Button("Export corrected results", variant="primary", elem_id="review-export")
        export_note = gr.Markdown(elem_id="review-export-note")
        downloads = gr.File(file_count="multiple", label="Corrected: MegaDetector JSON, Camtrap DP, "
                            "training sets (class folders, identities, YOLO, COCO)", elem_id="review-downloads")
        if queue is not None and settings.allow_training:
            with gr.Row():
                train_name = gr.Textbox(label="Train a species classifier on the reviewed crops: model name",
                                        elem_id="review-train-name")
                train_epochs = gr.Slider(1, 50, value=10, step=1, label="Epochs", elem_id="review-train-epochs")
                train_btn = gr.Button("Train in the Train tab's queue", elem_id="review-train")
            train_note = gr.Markdown(elem_id="review-train-note")
        else:
            train_btn = None

    view_outputs = [image, where, boxes, box, bx, by, bw, bh, species, individual, progress_md]
    filters_in = [threshold, category, species_filter, band, status, uncertain]

    def who(token, request) -> tuple[str, str | None]:
        return private_owner(request, token), getattr(request, "session_hash", None)

    def filters_of(cat, spf, bd, st, unc) -> Filters:
        return Filters(cat or ALL, spf or ALL, bd or ALL, st or ALL, bool(unc))

    def choices(owner: str):
        return backend.sources.list(owner)

    def review_sources(token=None, request: gr.Request | None = None):
        """Your reviewable sources (batches, queued jobs, uploads): the picker's choices."""
        owner, _ = who(token, request)
        return gr.update(choices=choices(owner))

    def _opened_updates(owner, source_id):
        o = backend.opened(owner, source_id)
        labels = list(o.source.results.labels)
        kinds = ["animal", "human", "vehicle"]
        species_names = sorted(set(o.source.species_names) | {b.species for s in o.states.states.values()
                                                              for b in s.boxes if b.species})
        return [gr.update(choices=[ALL, *kinds, *[x for x in labels if x not in kinds]], value=ALL),
                gr.update(choices=[ALL, *species_names], value=ALL),
                gr.update(choices=[(x, i) for i, x in enumerate(labels)], value=0 if labels else None),
                gr.update(choices=species_names)]

    def review_open(source_id, thr, token=None, request: gr.Request | None = None):
        """Open one of your sources for review at a threshold (filters reset)."""
        owner, session = who(token, request)
        with _errors():
            v = backend.open(owner, session, source_id, thr, Filters())
            return [*_outputs(v), *_opened_updates(owner, source_id)]

    def review_view(thr, cat, spf, bd, st, unc, token=None, request: gr.Request | None = None):
        """Change the threshold or the filters (nothing runs again)."""
        owner, session = who(token, request)
        with _errors():
            return _outputs(backend.set_view(owner, session, thr, filters_of(cat, spf, bd, st, unc)))

    def review_reload(thr, cat, spf, bd, st, unc, token=None, request: gr.Request | None = None):
        owner, session = who(token, request)
        with _errors():
            return _outputs(backend.set_view(owner, session, thr, filters_of(cat, spf, bd, st, unc), reload=True))

    def mover(step: int):
        def move(token=None, request: gr.Request | None = None):
            owner, session = who(token, request)
            with _errors():
                return _outputs(backend.move(owner, session, step))
        return move

    def actor(action: str):
        def act(name, token=None, request: gr.Request | None = None):
            owner, session = who(token, request)
            with _errors():
                return _outputs(backend.act(owner, session, action, (name or "").strip() or default_reviewer(owner)))
        return act

    def review_select(key, token=None, request: gr.Request | None = None):
        owner, session = who(token, request)
        with _errors():
            return _outputs(backend.select(owner, session, key))

    def review_box(action: str):
        def act(x, y, w, h, cls, name, token=None, request: gr.Request | None = None):
            owner, session = who(token, request)
            if any(v is None for v in (x, y, w, h)):
                raise gr.Error("Give the box as x, y, width, height (fractions of the image, 0–1).")
            with _errors():
                return _outputs(backend.act(owner, session, action, (name or "").strip() or default_reviewer(owner),
                                            bbox=(x, y, w, h), class_id=int(cls or 0)))
        return act

    def review_name(action: str):
        def act(value, name, token=None, request: gr.Request | None = None):
            owner, session = who(token, request)
            with _errors():
                return _outputs(backend.act(owner, session, action, (name or "").strip() or default_reviewer(owner),
                                            value=value))
        return act

    def review_progress_plot(token=None, request: gr.Request | None = None):
        """Precision and recall at each threshold, from your corrections."""
        owner, session = who(token, request)
        with _errors():
            o, rows = backend.progress_rows(owner, session)
        work = new_work_dir(review_root / "plots")
        path = review_progress.plot(rows, work / "precision-recall.png")
        fmt = lambda v: None if v is None else round(v, 3)  # noqa: E731
        table = [[r["threshold"], fmt(r["precision"]), fmt(r["recall"]), r["tp"], r["fp"], r["fn"]] for r in rows]
        return (str(path) if path else None), table

    def review_export(thr, name, deployments=None, utc_offset="+00:00", event_gap=60.0, token=None,
                      request: gr.Request | None = None):
        """The corrected results: MegaDetector JSON (originals kept), Camtrap DP (human
        classifications) and training sets (class folders, identities CSV, YOLO and COCO boxes)."""
        owner, session = who(token, request)
        reviewer_name = (name or "").strip() or default_reviewer(owner)
        form_values = deployments_form.form_values(deployments, utc_offset, event_gap)
        package = deployments_form.package_options(form_values, REVIEW_PACKAGE)
        with _errors():
            c = backend.cursor(owner, session)
            if c.source_id is None:
                raise UsageError("open a source first")
            o = backend.opened(owner, c.source_id)
            work = guard.disk.new_run(review_root, owner) if guard else new_work_dir(review_root)
            files, notes = export_all(o, work, float(thr), reviewer_name, settings.max_pixels, package)
        return [str(p) for p in files], "  \n".join(notes)

    def review_upload(md, images, token=None, request: gr.Request | None = None):
        """Open an uploaded MegaDetector JSON with its images for review."""
        owner, session = who(token, request)
        if not md:
            raise gr.Error("Upload a MegaDetector JSON first (and its images as a zip or files).")
        paths = [p if isinstance(p, str) else p.name for p in images or []]
        with user_errors(), _errors(), (guard.heavy(request, owner, paths, "upload") if guard else nullcontext()):
            work = guard.disk.new_run(review_root, owner) if guard else new_work_dir(review_root)
            from wildspace.formats.megadetector import FormatError

            try:
                save_upload(md, paths, work, owner, settings.limits.upload_limits())
            except FormatError as exc:
                raise gr.Error(f"Not a MegaDetector results file: {exc}") from None
            source_id = f"run:review/{work.name}"
        return gr.update(choices=choices(owner), value=source_id)

    ui: dict[str, Any] = {"api_visibility": "undocumented", "show_progress": "hidden", "trigger_mode": "multiple"}
    refresh.click(review_sources, [owner_state], [source], api_name="review_sources")
    opened_outputs = view_outputs + [category, species_filter, add_class, species]
    open_btn.click(review_open, [source, threshold, owner_state], opened_outputs, api_name="review_open")
    up_btn.click(review_upload, [up_json, up_images, owner_state], [source], api_name="review_upload").then(
        review_open, [source, threshold, owner_state], opened_outputs, api_name=False)
    threshold.input(review_view, [*filters_in, owner_state], view_outputs, api_name="review_view",
                    show_progress="hidden", trigger_mode="always_last")
    for comp in (category, species_filter, band, status, uncertain):
        comp.input(review_view, [*filters_in, owner_state], view_outputs,
                   api_name=False, show_progress="hidden")  # type: ignore[arg-type]  # gradio takes False: private

    def review_tick(thr, cat, spf, bd, st, unc, token=None, request: gr.Request | None = None):
        """A running job's new images appear while it is reviewed (otherwise nothing changes)."""
        try:
            owner, session = who(token, request)
            if not backend.running(owner, session):
                return [gr.update()] * len(view_outputs)
            return review_reload(thr, cat, spf, bd, st, unc, token, request)
        except gr.Error:
            return [gr.update()] * len(view_outputs)

    gr.Timer(5.0).tick(review_tick, [*filters_in, owner_state], view_outputs,
                       api_name=False, show_progress="hidden")  # type: ignore[arg-type]  # gradio takes False: private
    prev.click(mover(-1), [owner_state], view_outputs, api_name="review_prev", **ui)
    nxt.click(mover(+1), [owner_state], view_outputs, api_name="review_next", **ui)
    for button, action in ((accept, "accept"), (reject, "reject"), (empty, "empty"), (misfire, "misfire"),
                           (accept_box, "accept_box"), (delete_box, "delete_box")):
        button.click(actor(action), [reviewer, owner_state], view_outputs, api_name=f"review_{action}", **ui)
    box_chosen = box.input(review_select, [box, owner_state], view_outputs, api_name="review_select", **ui)
    box_in = [bx, by, bw, bh, add_class, reviewer, owner_state]
    redraw.click(review_box("redraw"), box_in, view_outputs, api_name="review_redraw", **ui)

    def review_click(then, cls, name, token, evt: gr.SelectData, request: gr.Request | None = None):
        """A click on the image: the first marks a corner, the second the opposite one."""
        owner, session = who(token, request)
        index = getattr(evt, "index", None)
        if not isinstance(index, (list, tuple)) or len(index) != 2:
            raise gr.Error("Click inside the image.")
        with _errors():
            return _outputs(backend.click(owner, session, int(index[0]), int(index[1]), then or "fill",
                                          (name or "").strip() or default_reviewer(owner), class_id=int(cls or 0)))

    image.select(review_click, [draw_mode, add_class, reviewer, owner_state], view_outputs, api_name=False,  # type: ignore[arg-type]
                 show_progress="hidden", trigger_mode="multiple")
    add.click(review_box("add"), box_in, view_outputs, api_name="review_add", **ui)
    set_species.click(review_name("species"), [species, reviewer, owner_state], view_outputs,
                      api_name="review_species", **ui)
    set_individual.click(review_name("individual"), [individual, reviewer, owner_state], view_outputs,
                         api_name="review_individual", **ui)
    if galleries is not None:
        wire_suggestions(galleries, backend, settings.max_pixels, who, owner_state, refresh, box_chosen, individual,
                         suggest_gallery, suggest_btn, suggest_note, suggested, suggest_for)
    pr_btn.click(review_progress_plot, [owner_state], [pr_plot, pr_table], api_name="review_precision_recall")
    export.click(review_export, [threshold, reviewer, *form.inputs, owner_state], [downloads, export_note],
                 api_name="review_export")
    if train_btn is not None:
        def review_train(name, epochs, token=None, request: gr.Request | None = None):
            """Queue a species classifier trained on your reviewed crops (a Train tab job)."""
            from wildspace.ui.train_tab import check_training_allowed, submit_training

            owner, session = who(token, request)
            check_training_allowed(settings, owner, "resnet18", ["resnet18"])
            if guard is not None:
                guard.check_jobs(queue, owner)
            with _errors():
                c = backend.cursor(owner, session)
                if c.source_id is None:
                    raise UsageError("open a source first")
                o = backend.opened(owner, c.source_id)
                work = guard.disk.new_run(review_root, owner) if guard else new_work_dir(review_root)
                z, counts = review_exports.write_class_folders(o, work / "reviewed-species.zip", settings.max_pixels)
            job = submit_training(queue, owner, str(z), None, name or "reviewed-species", "resnet18", int(epochs),
                                  "ce", 160, "species", "", False)
            note = (f"Training job `{job}` queued on {sum(counts.values())} reviewed crops of "
                    f"{len(counts)} species; the **Train** tab shows how it goes.")
            return (note, job) if train_job is not None else note

        train_btn.click(review_train, [train_name, train_epochs, owner_state],
                        [train_note] if train_job is None else [train_note, train_job], api_name="review_train")
    root = gr.context.Context.root_block
    if root is not None:  # the keys work wherever the tab is built inside a Blocks
        root.load(None, None, None, js=KEYS_JS, api_name=False)  # type: ignore[arg-type]  # gradio takes False: private
    return backend


def wire_suggestions(galleries, backend: ReviewService, max_pixels: int, who, owner_state, refresh, box_chosen,
                     individual, gallery, button, note, suggested, target) -> None:
    """The gallery's top matches for the selected box: choosing a gallery, pressing *Suggest*
    or choosing a box (with a gallery chosen) looks the box's crop up; a click on a match fills
    the individual ID (*Set individual* saves it)."""
    from wildspace.review.suggest import NEW_ANIMAL, crop_of, suggestions
    from wildspace.services.galleries import hide_paths
    from wildspace.ui.identity import owner_of

    def review_galleries(token=None, request: gr.Request | None = None):
        """The galleries you can look boxes up in (shared ones and your own)."""
        return gr.update(choices=galleries.names(owner_of(request, token)))

    def review_suggest(name, token=None, request: gr.Request | None = None):
        """The gallery's top matches for the selected box (best first) and "new animal"."""
        if not name:
            raise gr.Error("Choose a gallery to suggest from.")
        owner, session = who(token, request)
        with _errors():
            try:
                o, s, key = backend.selected(owner, session)
                crop = crop_of(o, s.file, key, max_pixels)
                found, verdict = suggestions(galleries, name, crop, owner_of(request, token))
            except (ValueError, OSError) as exc:
                raise gr.Error(hide_paths(str(exc))) from None
        n = next((i for i, b in enumerate(s.boxes, start=1) if b.key == key), 0)
        return (gr.update(choices=[(x.label, x.identity) for x in found], value=None,
                          label=f"Top matches for box {n} of {s.file}: click one to fill the individual ID"),
                verdict, (o.source.id, s.file, key))

    def review_suggest_quietly(name, token=None, request: gr.Request | None = None):
        if not name:
            return gr.update(), gr.update(), gr.update()
        try:
            return review_suggest(name, token, request)
        except gr.Error as exc:
            return gr.update(choices=[], value=None), f"*{exc.message}*", None

    def review_pick(choice, was_for, token=None, request: gr.Request | None = None):
        """A match clicked: its identity in the individual ID (a new animal: an empty one)."""
        owner, session = who(token, request)
        c = backend.cursor(owner, session)
        if not was_for or tuple(was_for) != (c.source_id, c.file, c.selected):
            raise gr.Error("These matches are for another box: press Suggest for the box selected now.")
        if choice == NEW_ANIMAL:
            return gr.update(value="", placeholder="a new animal: type its name")
        return gr.update(value=choice or "")

    ui: dict[str, Any] = {"show_progress": "hidden"}
    refresh.click(review_galleries, [owner_state], [gallery], api_name=False, **ui)  # type: ignore[arg-type]
    owner_state.change(review_galleries, [owner_state], [gallery], api_name=False, **ui)  # type: ignore[arg-type]
    outs = [suggested, note, target]
    button.click(review_suggest, [gallery, owner_state], outs, api_name="review_suggest")
    gallery.input(review_suggest_quietly, [gallery, owner_state], outs, api_name=False)  # type: ignore[arg-type]
    box_chosen.then(review_suggest_quietly, [gallery, owner_state], outs, api_name=False)  # type: ignore[arg-type]
    suggested.input(review_pick, [suggested, target, owner_state], [individual], api_name="review_pick",
                    api_visibility="undocumented")


def export_all(o, work: Path, threshold: float, reviewer: str, max_pixels: int,
               package: PackageOptions | None = None) -> tuple[list[Path], list[str]]:
    """Every corrected export of an open source into ``work`` (``package``: the Camtrap DP
    package's deployments, UTC offset and event gap, from the deployments form); notes say what
    was left out and why."""
    stem = "wildspace-reviewed"
    files = [review_exports.write_md(o, work / f"{stem}_megadetector.json")]
    notes = []
    if review_exports.is_video_source(o):  # frames of videos: the MD video JSON, and training sets
        notes.append("videos reviewed frame by frame: MegaDetector video JSON (no Camtrap DP package)")
    else:
        files.append(review_exports.write_camtrap(o, work / f"{stem}_camtrap_dp", threshold, reviewer,
                                                  zip_path=work / f"{stem}_camtrap_dp.zip",
                                                  options=package or REVIEW_PACKAGE))
    crops = {"class folders": lambda: review_exports.write_class_folders(o, work / f"{stem}_species_folders.zip",
                                                                          max_pixels),
             "identities": lambda: review_exports.write_identities(o, work / f"{stem}_identities.zip", max_pixels)}
    for what, fn in crops.items():
        try:
            path, counts = fn()
            files.append(path)
            notes.append(f"{what}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        except ValueError as exc:
            notes.append(f"no {what} zip: {exc}")
    path, n = review_exports.write_yolo(o, work / f"{stem}_yolo.zip")
    files.append(path)
    notes.append(f"YOLO boxes: {n} reviewed images")
    path, n = review_exports.write_coco_boxes(o, work / f"{stem}_coco.zip")
    files.append(path)
    notes.append(f"COCO boxes: {n} reviewed images")
    return files, notes
