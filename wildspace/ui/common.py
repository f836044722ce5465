"""Pieces every tab shares: the model picker, the threshold slider, error messages."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import gradio as gr

from wildspace.errors import USER_ERRORS
from wildspace.services.detectors import DetectorService


def model_controls(service: DetectorService, prefix: str) -> tuple[gr.Dropdown, gr.Slider]:
    """A detector dropdown and a confidence slider that follows the model's typical threshold."""
    names = service.detector_names()
    on_disk = service.available_detectors()
    default = on_disk[0] if on_disk else ("megadetector-v5a" if "megadetector-v5a" in names else names[0])

    def threshold_for(model: str) -> float:
        return service.spec(model).typical_threshold if model in names else 0.2

    model = gr.Dropdown(choices=names, value=default, label="Detector",
                        info="Models marked on disk in `python -m wildspace models list` run offline.",
                        elem_id=f"{prefix}-model")
    threshold = gr.Slider(0.01, 0.99, value=threshold_for(default), step=0.01,
                          label="Confidence threshold",
                          info="Boxes below this confidence are ignored. Starts at the model's typical threshold.",
                          elem_id=f"{prefix}-threshold")
    model.change(lambda m: gr.update(value=threshold_for(m)), model, threshold, api_name=False)  # type: ignore[arg-type]  # gradio takes False: private
    return model, threshold


NO_CLASSIFIER = "none"


def classifier_controls(classifiers, prefix: str) -> tuple[gr.Dropdown, gr.Slider]:
    """A species-classifier dropdown (``none`` first) and the classification threshold."""
    names = classifiers.names("species") if classifiers is not None else []
    choice = gr.Dropdown(choices=[NO_CLASSIFIER, *names], value=NO_CLASSIFIER, label="Species classifier",
                         info="Names the species on animal boxes (crops with a margin).",
                         elem_id=f"{prefix}-classifier")
    threshold = gr.Slider(0.0, 0.99, value=0.5, step=0.01, label="Species threshold",
                          info="Below this confidence a box's species reads 'unknown'.",
                          elem_id=f"{prefix}-species-threshold")

    def typical(name: str):
        return gr.update(value=classifiers.spec(name).typical_threshold if name in names else 0.5)

    choice.change(typical, choice, threshold, api_name=False)  # type: ignore[arg-type]  # gradio takes False: private
    return choice, threshold


def species_step(classifiers, name: str | None, threshold: float | None, min_detection_conf: float):
    """The :class:`~wildspace.classify.species.SpeciesStep` for a dropdown choice, or ``None``."""
    if not name or name == NO_CLASSIFIER:
        return None
    from wildspace.classify.species import SpeciesOptions, SpeciesStep

    if classifiers is None or name not in classifiers.names("species"):
        known = ", ".join(classifiers.names("species")) if classifiers is not None else ""
        raise gr.Error(f"Unknown species classifier '{name}'. Choose one of: {known or 'none configured'}.")
    with user_errors():
        clf = classifiers.load(name)
        options = SpeciesOptions(threshold=float(0.5 if threshold is None else threshold),
                                 min_detection_conf=float(min_detection_conf))
    return SpeciesStep(clf, options)


@contextlib.contextmanager
def user_errors():
    """Show the errors a user can cause as a message in the app, not a stack trace."""
    try:
        yield
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise gr.Error(msg) from None


def new_work_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix="run-"))


def gpu(fn):
    """Wrap GPU work for ZeroGPU (the ``spaces`` package, present on Hugging Face Spaces, is a
    no-op outside ZeroGPU hardware); without it, ``fn`` itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)
