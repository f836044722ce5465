"""Products: the seed taxonomy, answers with a heat-map, optional Faster R-CNN localisation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.classify.factories import install_classifier
from tests.factories import seed_hub_cache, sha256, write_spec
from wildspace.classify.products import (
    PRODUCT_LABELS,
    answer_product,
    check_product_labels,
    display_name,
    product_group,
)


def test_taxonomy_is_the_seed_projects():
    assert PRODUCT_LABELS == (
        "elephant_ambiguous_mammoth", "elephant_antique_ivory", "elephant_elephant_skin", "elephant_ivory",
        "pangolin_claw", "pangolin_crafted_scale", "pangolin_parched_scale", "pangolin_raw_scale",
        "tiger_bone_ambiguous", "tiger_claw", "tiger_fang_ambiguous", "tiger_other", "non_wildlife")
    assert product_group("tiger_claw") == "tiger" and product_group("pangolin_claw") == "pangolin"
    assert product_group("non_wildlife") == "non_wildlife"
    assert display_name("pangolin_raw_scale") == "pangolin: raw scale"
    with pytest.raises(ValueError, match="not a product label"):
        product_group("rhino_horn")
    with pytest.raises(ValueError, match="labels rhino_horn are not.*valid labels: elephant_ambiguous_mammoth"):
        check_product_labels(["elephant_ivory", "rhino_horn"])


@pytest.fixture
def products(specs_dir, hub_cache):
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "tiny-products", "timm", "test_resnet", list(PRODUCT_LABELS), 96,
                       kind="products", seed=11)
    return ClassifierService(load_settings())


def _photo(h=120, w=180, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_products_are_listed_apart_from_species(products):
    assert products.names("products") == ["tiny-products"] and "tiny-products" not in products.names("species")
    assert products.available("products") == ["tiny-products"]


def test_answer_whole_photo_with_heatmap(products):
    clf = products.load("tiny-products")
    photo = _photo()
    answer = answer_product(clf, photo, top_k=5)
    (region,) = answer.regions
    assert region.bbox_xywh_norm == (0.0, 0.0, 1.0, 1.0) and region.localizer_conf is None
    assert len(answer.top) == 5 and all(label in PRODUCT_LABELS for label, _ in answer.top)
    confs = [c for _, c in answer.top]
    assert confs == sorted(confs, reverse=True)
    probs = clf.predict([photo])[0]
    assert answer.top[0] == (PRODUCT_LABELS[int(probs.argmax())], pytest.approx(float(probs.max()), abs=1e-6))
    assert answer.explained == answer.top[0][0]
    assert answer.heatmap.shape == photo.shape[:2] and 0 <= answer.heatmap.min() <= answer.heatmap.max() <= 1


def test_species_labels_are_refused_for_a_products_model(specs_dir, hub_cache):
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "bad-products", "timm", "test_resnet", ["zebra", "ivory"], 64,
                       kind="products")
    with pytest.raises(ValueError, match="not in the product taxonomy"):
        ClassifierService(load_settings()).load("bad-products")


@pytest.fixture
def localizer(specs_dir, hub_cache, products):
    """A random torchvision Faster R-CNN (MobileNetV3 320) saved as safetensors, seeded into the
    Hub cache and described by a products-localizer spec."""
    import torch

    from wildspace.classify.models import save_classifier_weights
    from wildspace.classify.products import create_localizer_network
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    torch.manual_seed(0)
    net = create_localizer_network("fasterrcnn_mobilenet_v3_large_320_fpn", 1, 320)
    src = save_classifier_weights(net, hub_cache.parent / "built" / "localizer.safetensors")
    rev = seed_hub_cache(hub_cache, "test-org/localizer", src.name, src)
    write_spec(specs_dir, "tiny-localizer", "torchvision", src.name, sha256(src),
               hub={"repo_id": "test-org/localizer", "revision": rev}, labels=["product"], input_size=320,
               arch="fasterrcnn_mobilenet_v3_large_320_fpn", kind="products-localizer")
    return ClassifierService(load_settings()).load_localizer("tiny-localizer")


def test_localised_items_are_classified_on_their_crops(products, localizer):
    from wildspace.classify.crops import crop_box, crop_window

    photo = _photo(200, 260, seed=3)
    items = localizer.find(photo, min_conf=0.0)
    assert items, "a random Faster R-CNN still proposes boxes at min_conf 0"
    clf = products.load("tiny-products")
    answer = answer_product(clf, photo, localizer, min_item_conf=0.0, margin=0.05)
    assert [r.localizer_conf for r in answer.regions] == [c for _, c in items]
    first = answer.regions[0]
    probs = clf.predict([crop_box(photo, first.bbox_xywh_norm, 0.05)])[0]
    assert first.top[0][0] == PRODUCT_LABELS[int(probs.argmax())]
    x0, y0, x1, y1 = crop_window(photo.shape[:2], first.bbox_xywh_norm, 0.05)
    outside = answer.heatmap.copy()
    outside[y0:y1, x0:x1] = 0
    assert answer.heatmap.shape == photo.shape[:2] and not outside.any()


def test_localizer_finding_nothing_falls_back_to_the_whole_photo(products, localizer):
    answer = answer_product(products.load("tiny-products"), _photo(), localizer, min_item_conf=1.01)
    assert [r.bbox_xywh_norm for r in answer.regions] == [(0.0, 0.0, 1.0, 1.0)]


def test_a_classifier_is_not_a_localizer(products):
    with pytest.raises(ValueError, match="not a product localiser"):
        products.load_localizer("tiny-products")


def test_localizer_is_not_offered_as_a_camera_trap_detector(localizer):
    from wildspace.services.detectors import DetectorService

    names = DetectorService().detector_names()
    assert "tiny-localizer" not in names and "megadetector-v5a" in names
