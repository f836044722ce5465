"""The *Products* tab: is this item ivory, pangolin scale or a tiger part?

Upload a photo → the model's top classes with confidences → a Grad-CAM heat-map of where the
evidence for the top class lies → mark the answer right or wrong, give the right label and a
comment. Feedback is stored with the photo (data dir ``feedback/``) for retraining.

No products model has public weights: until one is configured the tab says so and explains how
to add one; it never shows made-up answers.
"""

from __future__ import annotations

import collections
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from wildspace.classify.feedback import FeedbackStore
from wildspace.classify.products import PRODUCT_LABELS, ProductAnswer, answer_product, display_name
from wildspace.media.images import ImageReadError, load_image
from wildspace.ui.common import gpu, user_errors
from wildspace.ui.identity import owner_of
from wildspace.ui.safe_image import SafeImage

NO_MODEL = """**No products model is configured yet.** There is no public model for wildlife-trade
products, so this tab gives no answers until you add one (nothing here is guessed).

1. **Train** any timm or torchvision image classifier on photos sorted into one folder per label
   (labels below; a subset is fine) and save its weights as `.safetensors`.
2. **Register** it (on this machine, or the Space's data dir):
   ```
   python -m wildspace models import products.safetensors --as my-products --task classify \\
       --kind products --arch resnet50 --family torchvision --input-size 224 --labels labels.txt
   ```
   or put a spec YAML (`task: classify`, `kind: products`, `arch`, `labels`, weights
   `local_only: true` + `sha256`) in the folder named by `WILDSPACE_MODELS` or in
   `<data dir>/specs/`, with the weights imported by `models import FILE --as NAME`.
3. **Restart** the app: the model appears here.

Labels: """ + ", ".join(f"`{x}`" for x in PRODUCT_LABELS)

CAUTION = ("A model's answer is a lead, not evidence: have an expert examine the item before any "
           "enforcement action.")
MAX_PENDING = 512


@dataclass(frozen=True)
class PendingAnswer:
    image_path: str
    model: str
    top: tuple[tuple[str, float], ...]
    labels: tuple[str, ...]
    owner: str


class PendingAnswers:
    """Answers awaiting feedback, by id (in memory, bounded; feedback itself is durable)."""

    def __init__(self, size: int = MAX_PENDING):
        self._items: collections.OrderedDict[str, PendingAnswer] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, answer: PendingAnswer) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = answer
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> PendingAnswer | None:
        with self._lock:
            return self._items.get(key)


def details_markdown(answer: ProductAnswer) -> str:
    lines = []
    for i, region in enumerate(answer.regions, 1):
        where = ("whole photo" if region.localizer_conf is None
                 else f"item {i} (found with confidence {region.localizer_conf:.2f})")
        best = ", ".join(f"{display_name(lab)} {conf:.2f}" for lab, conf in region.top[:3])
        lines.append(f"- **{where}**: {best}")
    return (f"**Most likely: {display_name(answer.top[0][0])}** ({answer.top[0][1]:.2f}) — model "
            f"`{answer.model}`.\n\n" + "\n".join(lines) +
            f"\n\nThe heat-map shows where the evidence for *{display_name(answer.explained)}* lies. "
            + CAUTION)


def classify_product_photo(classifiers, pending: PendingAnswers, image_path: str | None, model: str | None,
                           localize: bool, owner: str, max_pixels: int):
    """Returns (label confidences, heat-map image, details markdown, answer id)."""
    from wildspace.classify.gradcam import overlay

    if not classifiers.names("products"):
        raise gr.Error("No products model is configured yet; see the Products tab for how to add one.")
    if not model:
        raise gr.Error(f"Choose a products model: {', '.join(classifiers.names('products'))}.")
    if model not in classifiers.names("products"):
        raise gr.Error(f"'{model}' is not a products model; choose one of: "
                       f"{', '.join(classifiers.names('products'))}.")
    if not image_path:
        raise gr.Error("Upload a photo of the item first.")
    try:
        image = load_image(image_path, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise gr.Error(f"This file cannot be read as an image: {exc}") from None
    with user_errors():
        clf = classifiers.load(model)
        loc_name = classifiers.localizer_name(model) if localize else None
        localizer = classifiers.load_localizer(loc_name) if loc_name else None
    answer = answer_product(clf, image, localizer)
    key = pending.put(PendingAnswer(str(image_path), model, answer.top, clf.info.labels, owner))
    confidences = {display_name(lab): conf for lab, conf in answer.top}
    return confidences, overlay(image, answer.heatmap), details_markdown(answer), key


def submit_product_feedback(store: FeedbackStore, pending: PendingAnswers, answer_id: str | None,
                            verdict: str | None, right_label: str | None, comment: str | None,
                            owner: str) -> str:
    """Store a verdict on an answer; returns a confirmation."""
    key = answer_id or ""
    answer = pending.get(key)
    if answer is None:
        raise gr.Error("Identify a photo first, then give feedback on the answer (answers are kept "
                       "until the app restarts).")
    if answer.owner != owner:
        raise gr.Error("This answer was given to someone else.")
    if not Path(answer.image_path).is_file():
        raise gr.Error("The photo is no longer available; please identify it again.")
    label = _label_from_choice(right_label, answer.labels)
    earlier = store.answer(owner, key)
    with user_errors():  # one verdict per answer: a second submission replaces the first
        rec = store.add(answer.image_path, answer.model, answer.top, verdict or "", label,
                        comment or "", owner=owner, labels=answer.labels, answer_id=answer_id)
    what = "right" if rec.verdict == "right" else (
        f"wrong; right label: {display_name(rec.label)}" if rec.label else "wrong")
    saved = "updated your feedback on this answer" if earlier is not None else "saved"
    return f"Thank you: {saved} as **{what}** (feedback `{rec.id[:8]}`, {len(store)} in the store)."


def _label_from_choice(choice: str | None, labels: tuple[str, ...]) -> str | None:
    """Dropdown entries are display names; API callers may send the label itself."""
    if not choice:
        return None
    by_display = {display_name(x): x for x in labels}
    return by_display.get(choice, choice)


def build_tab(classifiers, store: FeedbackStore, owner_state=None, max_pixels: int = 200_000_000) -> gr.Dropdown:
    """The tab; returns its model dropdown (the Train tab adds newly trained models to it)."""
    names = classifiers.names("products")
    available = classifiers.available("products")
    pending = PendingAnswers()
    if not names:
        gr.Markdown(NO_MODEL, elem_id="products-no-model")
    else:
        gr.Markdown("Photograph the item (market stall, seizure, online listing) and press *Identify*. "
                    + CAUTION)
    with gr.Row():
        with gr.Column():
            image = SafeImage(type="filepath", label="Photo of the item", sources=["upload", "clipboard"],
                             elem_id="products-input")
            model = gr.Dropdown(choices=names, value=(available or names or [None])[0], label="Products model",
                                elem_id="products-model")
            localize = gr.Checkbox(value=True, label="Find items first (when the model has a localiser)")
            button = gr.Button("Identify", variant="primary", elem_id="products-run", interactive=bool(names))
        with gr.Column():
            top = gr.Label(num_top_classes=5, label="Top classes", elem_id="products-top")
            heat = gr.Image(type="pil", label="Where the evidence is (Grad-CAM)", format="jpeg",
                            elem_id="products-heatmap")
            details = gr.Markdown(elem_id="products-details")
            answer_id = gr.Textbox(visible=False)
    with gr.Accordion("Was this right? Your feedback trains the next model", open=True):
        with gr.Row():
            verdict = gr.Radio(["right", "wrong"], label="The answer was", elem_id="products-verdict")
            right = gr.Dropdown(choices=[display_name(x) for x in PRODUCT_LABELS], value=None,
                                label="Right label (if wrong; leave empty if unsure)",
                                allow_custom_value=True, elem_id="products-right-label")
        comment = gr.Textbox(label="Comment (optional)", lines=2, max_length=2000, elem_id="products-comment")
        send = gr.Button("Send feedback", elem_id="products-send")
        thanks = gr.Markdown(elem_id="products-thanks")

    @gpu
    def classify_product(image_path, model_name, find_items=True, token=None, request: gr.Request | None = None):
        """Identify a wildlife-trade product (elephant ivory, pangolin scales, tiger parts …) in a photo.

        Args:
            image_path: a photo of the item.
            model_name: a products model.
            find_items: locate items first when the model has a localiser.
        Returns:
            the top classes with confidences, a Grad-CAM heat-map, an explanation, and an answer
            id to give feedback with (submit_feedback).
        """
        return classify_product_photo(classifiers, pending, image_path, model_name, bool(find_items),
                                      owner_of(request, token), max_pixels)

    def submit_feedback(answer, verdict_value, right_label, comment_text, token=None,
                        request: gr.Request | None = None):
        """Say whether a product answer was right; give the right label and a comment.

        Args:
            answer: the answer id classify_product returned.
            verdict_value: "right" or "wrong".
            right_label: the correct label when wrong (e.g. "pangolin_raw_scale"), or empty.
            comment_text: anything the model's trainers should know.
        Returns:
            a confirmation.
        """
        return submit_product_feedback(store, pending, answer, verdict_value, right_label, comment_text,
                                       owner_of(request, token))

    def labels_of(model_name):
        labels = classifiers.spec(model_name).labels if model_name in names else PRODUCT_LABELS
        return gr.update(choices=[display_name(x) for x in labels], value=None)

    model.change(labels_of, model, right, api_name=False)  # type: ignore[arg-type]  # gradio takes False: private
    extra = [owner_state] if owner_state is not None else []
    button.click(classify_product, [image, model, localize] + extra, [top, heat, details, answer_id],
                 api_name="classify_product")
    send.click(submit_feedback, [answer_id, verdict, right, comment] + extra, [thanks], api_name="submit_feedback")
    return model
