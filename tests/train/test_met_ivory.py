"""A very short real training run on ../shared/data met-ivory-dev (ivory vs ceramics photos).

The README's accuracy figure comes from the longer command stated there; this test checks the
real-photo path end to end (decode, split, train, held-out metrics, Products service) quickly."""

from __future__ import annotations

import pytest

from wildspace.settings import load_settings


@pytest.mark.slow
def test_short_met_ivory_run_loads_in_products(shared_data, tmp_path):
    from wildspace.media.images import load_image
    from wildspace.services.classifiers import ClassifierService
    from wildspace.train.classifier import TrainConfig
    from wildspace.train.runs import run_classifier

    data = shared_data / "products" / "met-ivory-dev"
    config = TrainConfig(data=str(data), out_dir=str(tmp_path / "run"), name="met-ivory-short", arch="test_resnet",
                         family="timm", input_size=48, epochs=2, batch_size=8, lr=3e-3, kind="products",
                         label_map={"ivory": "elephant_ivory", "non_ivory": "non_wildlife"})
    s = run_classifier(config, load_settings())
    assert s["state"] == "done" and s["counts"] == {"train": 68, "val": 12, "test": 20}
    assert s["test"]["samples"] == 20 and sum(map(sum, s["test"]["confusion"])) == 20
    service = ClassifierService(load_settings())
    assert "met-ivory-short" in service.names("products")
    probs = service.load("met-ivory-short").predict([load_image(next((data / "ivory").glob("*.jpg")))])
    assert probs.shape == (1, 2)
