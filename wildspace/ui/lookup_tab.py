"""*Individual lookup* tab: which known animal is this, or is it a new one? Enrol new animals."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from wildspace.media.images import ImageReadError, load_image
from wildspace.services.galleries import hide_paths
from wildspace.ui.common import gpu, user_errors
from wildspace.ui.safe_image import SafeImage, image_file

NO_DETECTOR = "none (the photo is already a crop)"
AUTO = "auto"
LOCAL = "local"  # the embedder choice "none": weight-free local matching only
TABLE_HEADERS = ["rank", "identity", "probability", "score", "flank"]

HOW_TO = """No gallery yet. Build one from a folder of photos and a CSV of names:

`python -m wildspace gallery build --images DIR --identities ids.csv --out NAME`

or pull a published one (`python -m wildspace gallery pull ORG/REPO --revision COMMIT --name NAME`),
or enrol the first animals below (type a new gallery name)."""


def _thumb(rgb: np.ndarray, side: int = 256) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(rgb)
    im.thumbnail((side, side))
    return np.asarray(im)


def embedder_choices(galleries) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the *Embedder* dropdown: weight-free local matching, the
    spec'd embedders (MegaDescriptor, MiewID, DINOv2), then re-ID models trained or published
    in this install (installed models are visible to every visitor; on a public Space a
    visitor's model is installed only when the Space's owner publishes it)."""
    out = [("local: weight-free pattern matching (no model)", LOCAL)]
    for c in galleries.embedders():
        where = "trained here" if c.installed else "model spec"
        weights = "" if c.on_disk else ", weights fetched on first use"
        out.append((f"{c.name} ({where}{weights})", c.name))
    return out


def _verdict_text(result) -> str:
    if not result.matches:
        return "### New animal\nNothing in the gallery matches this photo."
    top = result.matches[0]
    if result.verdict == "known":
        return (f"### This is **{top.identity}**\nProbability it is the same animal: "
                f"**{top.probability:.0%}** (method: {result.method}).")
    return (f"### Looks like a new animal\nThe closest is {top.identity} with probability "
            f"{top.probability:.0%}, below the gallery's calibrated decision level. If you know "
            "this animal, enrol it below.")


@contextlib.contextmanager
def app_errors():
    """:func:`user_errors`, and no message names a server path (the data dir, upload cache)."""
    try:
        with user_errors():
            yield
    except gr.Error as exc:
        raise gr.Error(hide_paths(exc.message)) from None
    except OSError as exc:
        raise gr.Error(f"The gallery cannot be used right now ({exc.strerror or type(exc).__name__}).") from None


def build_tab(galleries, detectors, out_dir: Path | None = None, owner_state=None) -> None:
    """The tab; answer images are written under ``out_dir`` (default: a temporary folder).

    ``owner_state`` (the session's owner token) scopes galleries: shared galleries (built with
    the CLI) are visible to everyone, galleries created here only to their creator."""
    from wildspace.ui.free_dropdown import FreeDropdown
    from wildspace.ui.identity import owner_of, private_owner

    owner_state = owner_state if owner_state is not None else gr.State(None)
    out_dir = out_dir or Path(tempfile.gettempdir()) / "wildspace-app" / "lookup"
    names = galleries.shared_names()
    det_names = [NO_DETECTOR, *detectors.detector_names()] if detectors is not None else [NO_DETECTOR]
    on_disk = detectors.available_detectors() if detectors is not None else []
    with gr.Row():
        with gr.Column():
            gallery_in = FreeDropdown(choices=names, value=names[0] if names else None,
                                     label="Gallery", allow_custom_value=True,
                                     elem_id="lookup-gallery",
                                     info="Known animals to compare with (see `gallery build`).")
            if not names:
                gr.Markdown(HOW_TO, elem_id="lookup-howto")
            image = SafeImage(type="filepath", label="Photo of the animal", elem_id="lookup-input",
                             sources=["upload", "clipboard"])
            flank = gr.Radio(["unknown", "left", "right"], value="unknown", label="Flank shown",
                             info="Left and right flanks carry different patterns.")
            crop_with = gr.Dropdown(choices=det_names, value=on_disk[0] if on_disk else NO_DETECTOR,
                                    label="Crop the animal with", allow_custom_value=True,
                                    elem_id="lookup-crop-with",
                                    info="For whole camera-trap frames: the most confident animal box.")
            method = gr.Dropdown(choices=[AUTO, "local", "embed", "fused"], value=AUTO,
                                 label="Matching method",
                                 info="local = weight-free pattern matching; embed = a re-ID model; "
                                      "fused = both (auto picks the best the gallery supports).")
            button = gr.Button("Look up", variant="primary", elem_id="lookup-run")
        with gr.Column():
            verdict = gr.Markdown(elem_id="lookup-verdict")
            crop = gr.Image(label="What was matched", type="numpy", elem_id="lookup-crop")
            matches = gr.Gallery(label="Top matches", columns=5, height=220, elem_id="lookup-matches")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Candidates", interactive=False)
    with gr.Row():
        name = gr.Textbox(label="Name for this animal", elem_id="lookup-identity",
                          info="A new name enrols a new individual; an existing name adds a photo.")
        embedder_in = gr.Dropdown(choices=embedder_choices(galleries), value=LOCAL,  # type: ignore[arg-type]
                                  label="Embedder for a new gallery", allow_custom_value=True,
                                  elem_id="lookup-embedder",
                                  info="Used when Enrol creates a gallery (a gallery keeps the "
                                       "embedder it was made with); local needs no model.")
        enrol_button = gr.Button("Enrol", elem_id="lookup-enrol")
        enrolled = gr.Markdown(elem_id="lookup-enrolled")

    def _inputs(gallery_name, image_path, detector):
        if not gallery_name:
            raise gr.Error("Choose a gallery (or type a new name to enrol the first animal).")
        if not image_path:
            raise gr.Error("Upload a photo first.")
        try:
            rgb = load_image(image_path, max_pixels=galleries.settings.max_pixels)
        except ImageReadError as exc:
            raise gr.Error(f"This file cannot be read as an image: {hide_paths(exc)}") from None
        return rgb, None if detector in (None, "", NO_DETECTOR) else detector

    @gpu
    def lookup_individual(gallery_name, image_path, flank_shown="unknown", detector=NO_DETECTOR,
                          match_method=AUTO, token=None, request: gr.Request | None = None):
        """Identify an individual animal against a gallery of known animals.

        Args:
            gallery_name: the gallery to search.
            image_path: photo of the animal (a crop, or a whole frame with a detector).
            flank_shown: "left", "right" or "unknown".
            detector: detector that crops the animal from a whole frame, or "none …".
            match_method: "auto", "local", "embed" or "fused".
        Returns:
            verdict text, the matched crop, top-5 thumbnails with captions, a candidates table.
        """
        rgb, det = _inputs(gallery_name, image_path, detector)
        view = "" if flank_shown in (None, "", "unknown") else flank_shown
        owner = owner_of(request, token)
        with app_errors():
            ans = galleries.lookup(gallery_name, rgb, view, det,
                                   None if match_method in (None, "", AUTO) else match_method,
                                   owner=owner)
            g = galleries.open(gallery_name, owner)
        r = ans.result
        out_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=out_dir))
        thumbs = [(image_file(_thumb(g.image(m.image_index)), folder, f"match{i}"),
                   f"{m.identity} · p={m.probability:.2f}") for i, m in enumerate(r.matches)]
        rows = [[i + 1, m.identity, round(m.probability, 3), round(m.score, 4), m.viewpoint or "-"]
                for i, m in enumerate(r.matches)]
        return _verdict_text(r), image_file(_thumb(ans.crop, 512), folder, "query"), thumbs, rows

    def enrol_individual(gallery_name, image_path, identity, flank_shown="unknown",
                         detector=NO_DETECTOR, embedder=LOCAL, token=None,
                         request: gr.Request | None = None):
        """Add a photo of an animal to a gallery under a name (a new name enrols a new animal).

        Args:
            gallery_name: the gallery (created if it does not exist).
            image_path: photo of the animal.
            identity: the animal's name.
            flank_shown: "left", "right" or "unknown".
            detector: detector that crops the animal from a whole frame, or "none …".
            embedder: for a gallery this creates: "local" (weight-free matching only) or an
                embedder's name (a model spec or a re-ID model trained here).
        Returns:
            a confirmation line.
        """
        from wildspace.reid.build import prepare_query

        rgb, det = _inputs(gallery_name, image_path, detector)
        if not (identity or "").strip():
            raise gr.Error("Type the animal's name first.")
        view = "" if flank_shown in (None, "", "unknown") else flank_shown
        with app_errors():
            crop_img, bbox = prepare_query(rgb, None, galleries.crop_fn(det))
            g = galleries.enrol(gallery_name, crop_img, identity.strip(), view, bbox, create=True,
                                owner=private_owner(request, token),
                                embedder=None if embedder in (None, "", LOCAL) else embedder)
        animals = len(set(g.identities.tolist()))
        uses = f" (embedder {g.embedder} + local matching)" if g.embedder else ""
        return (f"Enrolled **{identity.strip()}** in gallery '{gallery_name}': {len(g)} photos of "
                f"{animals} animals{uses}.")

    def _choices(current, token=None, request: gr.Request | None = None):
        return gr.update(choices=galleries.names(owner_of(request, token)), value=current)

    def _embedder_choices(current):
        return gr.update(choices=embedder_choices(galleries), value=current or LOCAL)

    button.click(lookup_individual, [gallery_in, image, flank, crop_with, method, owner_state],
                 [verdict, crop, matches, table], api_name="lookup_individual")
    enrol_button.click(enrol_individual, [gallery_in, image, name, flank, crop_with, embedder_in,
                                          owner_state],
                       enrolled, api_name="enrol_individual").then(
        _choices, [gallery_in, owner_state], gallery_in, api_name=False)
    owner_state.change(_choices, [gallery_in, owner_state], gallery_in, api_name=False)
    # models trained or published since the page was built appear without a restart
    embedder_in.focus(_embedder_choices, embedder_in, embedder_in, api_name=False)  # type: ignore[arg-type]  # gradio takes False: private
