"""MegaDetector's own validator, without its side effect on PIL.

Importing ``megadetector`` (``visualization_utils``) sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES
= True`` for the whole process, so truncated JPEGs that must be ``failure`` entries decode in
every later test. The flag is put back after the import and the call."""

from __future__ import annotations

from pathlib import Path


def md_validation_errors(path: str | Path) -> list[str]:
    """The errors ``validate_batch_results`` finds in an MD JSON file (empty when valid)."""
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        from megadetector.postprocessing.validate_batch_results import validate_batch_results

        return validate_batch_results(str(path))["validation_results"]["errors"]
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
