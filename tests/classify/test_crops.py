"""Crops with a margin, clipped to the image, from normalised boxes."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.classify.crops import crop_box


def _image(h=100, w=200):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, np.zeros_like(x)], axis=2).astype(np.uint8)


def test_margin_grows_each_side_by_a_fraction_of_the_box():
    im = _image()
    crop = crop_box(im, (0.25, 0.2, 0.5, 0.5), margin=0.1)  # box x 50..150, y 20..70
    assert crop.shape == (60, 120, 3)  # 50+2*5 by 100+2*10
    assert crop[0, 0, 0] == 40 and crop[0, 0, 1] == 15  # top-left at (x=40, y=15)


def test_no_margin_is_the_box_itself_and_a_copy():
    im = _image()
    crop = crop_box(im, (0.1, 0.1, 0.2, 0.3), margin=0.0)
    assert crop.shape == (30, 40, 3)
    crop[:] = 0
    assert im[10, 20, 0] == 20


def test_clipped_at_the_image_border():
    crop = crop_box(_image(), (0.9, 0.8, 0.2, 0.3), margin=0.5)
    assert crop.shape[0] <= 100 - 65 and crop.shape[1] <= 200 - 160
    assert crop[-1, -1, 0] == 199 and crop[-1, -1, 1] == 99


def test_square_keeps_the_aspect_ratio():
    crop = crop_box(_image(), (0.4, 0.3, 0.1, 0.4), margin=0.0, square=True)  # 20x40 px box
    assert crop.shape[:2] == (40, 40)


def test_tiny_box_gives_at_least_one_pixel():
    assert crop_box(_image(), (0.5, 0.5, 0.0, 0.0), margin=0.1).shape[:2] == (1, 1)


@pytest.mark.parametrize("bbox, message", [
    ((0.1, 0.1, float("nan"), 0.2), "finite"),
    ((0.1, 0.1, -0.1, 0.2), ">= 0"),
    ((1.2, 0.1, 0.1, 0.1), "outside"),
    ((0.1, 0.2, 0.3), "4 finite"),
])
def test_bad_boxes_are_clear_errors(bbox, message):
    with pytest.raises(ValueError, match=message):
        crop_box(_image(), bbox)
