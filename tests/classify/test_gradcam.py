"""Grad-CAM: a heat-map the size of the image, in [0, 1], whose peak follows the evidence."""

from __future__ import annotations

import numpy as np
import pytest

from tests.classify.factories import SERENGETI, install_classifier
from wildspace.classify.gradcam import grad_cam, overlay

H, W = 150, 200
PATCH_A = (slice(20, 70), slice(20, 70))
PATCH_B = (slice(90, 140), slice(140, 190))


def _scene(patch, seed=0):
    """A flat grey image with one patch of random texture."""
    im = np.full((H, W, 3), 124, np.uint8)
    ys, xs = patch
    im[ys, xs] = np.random.default_rng(seed).integers(0, 256, (50, 50, 3))
    return im


def _centre(patch):
    return np.array([(patch[0].start + patch[0].stop) / 2, (patch[1].start + patch[1].stop) / 2])


def _make_texture_detector(clf) -> None:
    """Point class 0 of the random network at 'textured, not flat' features and make it the
    predicted class: its evidence then lies exactly where the texture is."""
    import torch

    s = clf.info.input_size
    noise = np.random.default_rng(99).integers(0, 256, (s, s, 3), dtype=np.uint8)
    flat = np.full((s, s, 3), 124, np.uint8)
    with torch.no_grad():
        f_noise, _ = clf.split_forward(clf.preprocess([noise]))
        f_flat, _ = clf.split_forward(clf.preprocess([flat]))
        direction = (f_noise - f_flat).mean(dim=(2, 3))[0]
        fc = clf.net.fc if clf.info.family == "torchvision" else clf.net.get_classifier()
        fc.weight[0] = direction / direction.norm()
        fc.bias[0] = 100.0


@pytest.fixture(params=[("timm", "test_resnet"), ("torchvision", "resnet18")], ids=["timm", "torchvision"])
def texture_classifier(request, specs_dir, hub_cache):
    """A 128 px classifier (a 4x4 feature grid) through the production loader, turned into a
    texture detector."""
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    family, arch = request.param
    install_classifier(specs_dir, hub_cache, "cam-test", family, arch, SERENGETI, 128, seed=2)
    clf = ClassifierService(load_settings()).load("cam-test")
    _make_texture_detector(clf)
    return clf


def test_heatmap_has_the_image_shape_and_range(classifiers):
    image = _scene(PATCH_A)
    for name in ("tiny-timm", "tiny-tv"):
        heat, k = grad_cam(classifiers.load(name), image)
        assert heat.shape == (H, W) and heat.dtype == np.float32
        assert 0.0 <= heat.min() and heat.max() <= 1.0
        assert k == int(classifiers.load(name).predict([image])[0].argmax())


def test_peak_moves_with_the_evidence(texture_classifier):
    heat_a, ka = grad_cam(texture_classifier, _scene(PATCH_A))
    heat_b, kb = grad_cam(texture_classifier, _scene(PATCH_B))
    assert ka == kb == 0  # the predicted class
    peak_a = np.array(np.unravel_index(heat_a.argmax(), heat_a.shape))
    peak_b = np.array(np.unravel_index(heat_b.argmax(), heat_b.shape))
    assert np.linalg.norm(peak_a - _centre(PATCH_A)) < np.linalg.norm(peak_a - _centre(PATCH_B))
    assert np.linalg.norm(peak_b - _centre(PATCH_B)) < np.linalg.norm(peak_b - _centre(PATCH_A))
    assert heat_a[PATCH_A].mean() > heat_a[PATCH_B].mean()
    assert heat_b[PATCH_B].mean() > heat_b[PATCH_A].mean()


def test_explains_a_chosen_class_and_refuses_unknown_ones(classifiers):
    clf = classifiers.load("tiny-timm")
    heat, k = grad_cam(clf, _scene(PATCH_A), class_index=3)
    assert k == 3 and heat.shape == (H, W)
    with pytest.raises(ValueError, match="class_index 7 is not in 0..4"):
        grad_cam(clf, _scene(PATCH_A), class_index=7)


def test_vision_transformer_tokens_become_a_grid(specs_dir, hub_cache):
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "tiny-vit", "timm", "test_vit", SERENGETI, 160, seed=5)
    heat, _ = grad_cam(ClassifierService(load_settings()).load("tiny-vit"), _scene(PATCH_B))
    assert heat.shape == (H, W) and heat.max() <= 1.0


def test_overlay_is_an_image_of_the_same_size():
    image = _scene(PATCH_A)
    heat = np.zeros((H, W), np.float32)
    heat[PATCH_A] = 1.0
    im = np.asarray(overlay(image, heat))
    assert im.shape == image.shape
    assert im[45, 45, 0] > im[45, 45, 2]  # hot: red
    assert im[115, 165, 2] >= im[115, 165, 0]  # cold: blue
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:10])
