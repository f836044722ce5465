"""The *Single image* tab: choose a model, upload a photo, see what was found."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from wildspace.formats.megadetector import build_results, detector_metadata, write_results
from wildspace.media.draw import draw_detections
from wildspace.media.images import ImageReadError, load_image
from wildspace.services.detectors import DetectorService
from wildspace.types import ImageResult
from wildspace.ui.common import classifier_controls, gpu, model_controls, species_step, user_errors
from wildspace.ui.safe_image import SafeImage, image_file

TABLE_HEADERS = ["label", "category", "confidence", "x_min", "y_min", "width", "height", "species",
                 "species confidence"]


def detect_single(service: DetectorService, image_path: str | None, model: str,
                  threshold: float, out_dir: Path, classifiers=None, classifier: str | None = None,
                  species_threshold: float | None = None):
    """Returns (annotated image file, table rows, path of the MD JSON file). With a
    ``classifier`` name, animal boxes above ``threshold`` get species."""
    if not image_path:
        raise gr.Error("Upload an image first.")
    try:
        image = load_image(image_path, max_pixels=service.settings.max_pixels)
    except ImageReadError as exc:
        raise gr.Error(f"This file cannot be read as an image: {exc}") from None
    with user_errors():
        detector = service.load(name=model)
    species = species_step(classifiers, classifier, species_threshold, float(threshold))
    (dets,) = detector.run([detector.prepare(image)], float(threshold))
    info = detector.info
    if species is not None:
        dets = species.on_image(image, dets, info.labels)
    rows = []
    for d in dets:
        name, conf = species.species(d) if species is not None else ("", None)
        rows.append([info.labels[d.class_id] if d.class_id < len(info.labels) else str(d.class_id),
                     d.category, round(d.conf, 3), *[round(v, 4) for v in d.bbox_xywh_norm],
                     name, None if conf is None else round(conf, 3)])
    h, w = image.shape[:2]
    result = ImageResult(Path(image_path).name, dets, width=w, height=h)
    doc = build_results([result], info.labels, info.extra.get("file", info.name),
                        detector_metadata(info, float(threshold)),
                        **(species.md_fields() if species is not None else {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=out_dir)) / f"{Path(image_path).stem}_detections.json"
    write_results(doc, out)
    caption = species.caption if species is not None else None
    drawn = image_file(draw_detections(image, dets, info.labels, caption), out.parent, "detections")
    return drawn, rows, str(out)


def build_tab(service: DetectorService, out_dir: Path, classifiers=None) -> None:
    with gr.Row():
        with gr.Column():
            image = SafeImage(type="filepath", label="Camera-trap image", sources=["upload", "clipboard"],
                             elem_id="single-input")
            model, threshold = model_controls(service, "single")
            classifier, species_threshold = classifier_controls(classifiers, "single")
            button = gr.Button("Detect", variant="primary", elem_id="single-run")
        with gr.Column():
            annotated = gr.Image(type="pil", label="Detections", format="jpeg", elem_id="single-output")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Detections (bbox as fractions of the image)",
                                 interactive=False)
            download = gr.File(label="MegaDetector JSON (Timelapse, AddaxAI …)")

    @gpu
    def detect_image(image_path, model_name, conf, classifier_name="none", species_conf=0.5):
        """Find animals, people and vehicles in one camera-trap image, and optionally their species.

        Args:
            image_path: the image file.
            model_name: detector name (e.g. megadetector-v5a).
            conf: confidence threshold between 0 and 1.
            classifier_name: species classifier for animal boxes, or "none".
            species_conf: species confidence below which a box reads "unknown".
        Returns:
            the annotated image, a table of detections (with species) and a MegaDetector JSON file.
        """
        return detect_single(service, image_path, model_name, conf, out_dir, classifiers, classifier_name,
                             species_conf)

    button.click(detect_image, [image, model, threshold, classifier, species_threshold],
                 [annotated, table, download], api_name="detect_image")
