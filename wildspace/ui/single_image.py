"""The *Single image* tab: choose a model, upload a photo, see what was found."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from wildspace.errors import USER_ERRORS
from wildspace.formats.megadetector import build_results, write_results
from wildspace.media.draw import draw_detections
from wildspace.media.images import ImageReadError, load_image
from wildspace.services import DetectorService
from wildspace.types import ImageResult

TABLE_HEADERS = ["label", "category", "confidence", "x_min", "y_min", "width", "height"]


def detect_single(service: DetectorService, image_path: str | None, model: str,
                  threshold: float, out_dir: Path):
    """Returns (annotated PIL image, table rows, path of the MD JSON file)."""
    if not image_path:
        raise gr.Error("Upload an image first.")
    try:
        image = load_image(image_path, max_pixels=service.settings.max_pixels)
    except ImageReadError as exc:
        raise gr.Error(f"This file cannot be read as an image: {exc}") from None
    try:
        detector = service.load(name=model)
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise gr.Error(msg) from None
    (dets,) = detector.run([detector.prepare(image)], float(threshold))
    info = detector.info
    rows = [[info.labels[d.class_id] if d.class_id < len(info.labels) else str(d.class_id),
             d.category, round(d.conf, 3), *[round(v, 4) for v in d.bbox_xywh_norm]] for d in dets]
    h, w = image.shape[:2]
    result = ImageResult(Path(image_path).name, dets, width=w, height=h)
    doc = build_results([result], info.labels, info.extra.get("file", info.name), {
        "megadetector_version": info.version or info.name, "model_name": info.name,
        "typical_detection_threshold": info.typical_threshold,
        "conservative_detection_threshold": info.conservative_threshold,
        "image_size": info.input_size, "output_threshold": float(threshold)})
    out_dir.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=out_dir)) / f"{Path(image_path).stem}_detections.json"
    write_results(doc, out)
    return draw_detections(image, dets, info.labels), rows, str(out)


def build_tab(service: DetectorService, out_dir: Path) -> None:
    names = service.detector_names()
    on_disk = service.available_detectors()
    default = on_disk[0] if on_disk else ("megadetector-v5a" if "megadetector-v5a" in names else names[0])

    def threshold_for(model: str) -> float:
        return service.spec(model).typical_threshold if model in names else 0.2

    with gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="Camera-trap image", sources=["upload", "clipboard"])
            model = gr.Dropdown(choices=names, value=default, label="Detector",
                                info="Models marked on disk in `python -m wildspace models list` run offline.")
            threshold = gr.Slider(0.01, 0.99, value=threshold_for(default), step=0.01,
                                  label="Confidence threshold",
                                  info="Boxes below this confidence are hidden. Default: the model's typical threshold.")
            button = gr.Button("Detect", variant="primary")
        with gr.Column():
            annotated = gr.Image(type="pil", label="Detections", format="jpeg")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Detections (bbox as fractions of the image)",
                                 interactive=False)
            download = gr.File(label="MegaDetector JSON (Timelapse, AddaxAI …)")

    model.change(lambda m: gr.update(value=threshold_for(m)), model, threshold, api_name=False)
    button.click(lambda i, m, t: detect_single(service, i, m, t, out_dir),
                 [image, model, threshold], [annotated, table, download], api_name="detect_image")


__all__ = ["build_tab", "detect_single"]
