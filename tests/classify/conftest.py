"""Classifier fixtures: tiny random timm/torchvision models through a seeded local Hub cache."""

from __future__ import annotations

import pytest

from tests.classify.factories import SERENGETI, install_classifier


@pytest.fixture
def classifiers(specs_dir, hub_cache):
    """A ClassifierService over the production registry/store, with two species classifiers:
    ``tiny-timm`` (timm test_resnet, safetensors) and ``tiny-tv`` (torchvision resnet18)."""
    from wildspace.services.classifiers import ClassifierService
    from wildspace.settings import load_settings

    install_classifier(specs_dir, hub_cache, "tiny-timm", "timm", "test_resnet", SERENGETI, 64)
    install_classifier(specs_dir, hub_cache, "tiny-tv", "torchvision", "resnet18", SERENGETI, 64, seed=1)
    return ClassifierService(load_settings())
