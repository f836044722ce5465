"""The gallery's top matches for a box under review: its crop is looked up in an individual
gallery (:meth:`wildspace.services.galleries.GalleryService.lookup`) and the candidates come
back as choices for the box's individual ID, with "a new animal" among them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from wildspace.errors import UsageError
from wildspace.media.images import ImageReadError, load_image
from wildspace.review.exports import box_crop
from wildspace.review.view import OpenSource

NEW_ANIMAL = "(new animal)"  # the choice value of "a new animal" (it clears the individual ID)


@dataclass(frozen=True)
class Suggestion:
    """One choice for a box's individual: a gallery identity, or :data:`NEW_ANIMAL`."""

    identity: str
    probability: float | None
    label: str


def crop_of(opened: OpenSource, file: str, key: str, max_pixels: int) -> np.ndarray:
    """The box ``key`` of ``file`` cut from the full-size image (with the training crops' margin)."""
    box = opened.state(file).box(key)
    if box is None:
        raise UsageError(f"this image has no box {key}")
    path = opened.source.image_path(file)
    if path is None:
        raise UsageError("this image is not available (only its boxes): nothing to look up")
    try:
        image = Image.fromarray(load_image(path, max_pixels=max_pixels))
    except (ImageReadError, OSError):
        raise UsageError("this image cannot be read: nothing to look up") from None
    crop = box_crop(image, box.bbox)
    if crop is None:
        raise UsageError("this box is too small to look up")
    return np.asarray(crop.convert("RGB"))


def suggestions(galleries, gallery: str, crop: np.ndarray, owner: str | None, k: int = 5
                ) -> tuple[list[Suggestion], str]:
    """The top ``k`` identities of ``gallery`` for ``crop`` (best first) and "a new animal",
    which comes first when the gallery's verdict is *new*; and a line saying the verdict."""
    answer = galleries.lookup(gallery, crop, k=k, owner=owner)
    r = answer.result
    matches = [Suggestion(m.identity, float(m.probability), f"{m.identity} · p={m.probability:.2f}")
               for m in r.matches]
    new = Suggestion(NEW_ANIMAL, None, "new animal")
    if r.verdict == "known" and matches:
        verdict = f"Gallery '{gallery}': this is most likely **{matches[0].identity}** (p={r.probability:.2f})."
        return [*matches, new], verdict
    closest = f"; the closest is {matches[0].identity} (p={matches[0].probability:.2f})" if matches else ""
    return [new, *matches], f"Gallery '{gallery}': looks like **a new animal**{closest}."
