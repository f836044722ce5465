"""The Products tab and species in the detection tabs: handlers, the running app through
gradio_client, feedback that survives an app restart and exports to a ``datasets`` dataset."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.classify.factories import SERENGETI, install_classifier, make_classifier_file
from wildspace.classify.products import PRODUCT_LABELS, display_name
from wildspace.formats.megadetector import read_results
from wildspace.settings import BUILTIN_SPECS_DIR, Settings

ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"
PRODUCTS = "local-products"


def _settings(home):
    return Settings(home=home, spec_dirs=(BUILTIN_SPECS_DIR, home / "specs"), offline=True,
                    hf_cache=home / "hf")


def _add_locally_trained_products_model(home, tmp_dir):
    """What training will produce: a safetensors file plus a spec YAML in the user spec dir
    (sha256 recorded on import), brought in with `models import FILE --as NAME`."""
    from wildspace.services.detectors import DetectorService

    weights = make_classifier_file(tmp_dir / "products.safetensors", "torchvision", "resnet18", len(PRODUCT_LABELS),
                                   seed=21)
    spec = {"name": PRODUCTS, "task": "classify", "family": "torchvision", "version": "trained-locally",
            "weights": {"filename": "products.safetensors", "sha256": None, "local_only": True,
                        "sha256_note": "trained on this machine; recorded at import"},
            "input_size": 96, "labels": list(PRODUCT_LABELS), "thresholds": {"typical": 0.5, "conservative": 0.3},
            "license": "internal", "card": "Products classifier fine-tuned locally on seized-item photos (test).",
            "arch": "resnet18", "kind": "products"}
    (home / "specs").mkdir(parents=True, exist_ok=True)
    (home / "specs" / f"{PRODUCTS}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    DetectorService(_settings(home)).import_model(weights, PRODUCTS)


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data):
    from wildspace.services.detectors import DetectorService

    home = tmp_path_factory.mktemp("products-home")
    _add_locally_trained_products_model(home, tmp_path_factory.mktemp("trained"))
    install_classifier(home / "specs", home / "hf", "tiny-species", "timm", "test_resnet", SERENGETI, 64)
    DetectorService(_settings(home)).import_model(shared_data / "weights" / "yolov5n.pt", "coco-yolov5n")
    return home


@pytest.fixture(scope="module")
def app(home, tmp_path_factory):
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app

    demo = build_app(DetectorService(_settings(home)), tmp_path_factory.mktemp("out"))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.local_url, verbose=False)


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "bangle.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(p)
    return p


def test_without_a_products_model_the_tab_says_how_to_add_one(tmp_path, photo):
    import gradio as gr

    from wildspace.services.classifiers import ClassifierService
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app
    from wildspace.ui.products_tab import PendingAnswers, classify_product_photo

    service = DetectorService(_settings(tmp_path / "empty-home"))
    demo = build_app(service, tmp_path / "out")
    texts = [c.get("props", {}).get("value") for c in demo.config["components"]]
    assert any(isinstance(t, str) and "No products model is configured yet" in t
               and "models import" in t and "--kind products" in t for t in texts)
    with pytest.raises(gr.Error, match="No products model is configured"):
        classify_product_photo(ClassifierService.sharing(service), PendingAnswers(), str(photo), None, True,
                               "me", 10**8)


def test_classify_product_and_feedback_through_the_api(client, photo, home):
    from gradio_client import handle_file

    top, heat, details, answer_id = client.predict(handle_file(str(photo)), PRODUCTS, True,
                                                   api_name="/classify_product")
    assert len(top["confidences"]) == 5
    confs = [c["confidence"] for c in top["confidences"]]
    assert confs == sorted(confs, reverse=True) and 0 < sum(confs) <= 1.0001
    heat_path = heat if isinstance(heat, str) else heat["path"]
    assert Image.open(heat_path).size == (120, 90)  # the heat-map covers the photo
    assert "Most likely" in details and "not evidence" in details and len(answer_id) == 32
    msg = client.predict(answer_id, "wrong", "pangolin_raw_scale", "scales, not ivory", api_name="/submit_feedback")
    assert "saved as **wrong; right label: pangolin: raw scale**" in msg
    with pytest.raises(Exception, match="not a label of this model"):
        client.predict(answer_id, "wrong", "rhino_horn", "", api_name="/submit_feedback")
    with pytest.raises(Exception, match="Identify a photo first"):
        client.predict("0" * 32, "right", "", "", api_name="/submit_feedback")


def test_classify_product_on_the_bad_input_corpus(client, tmp_path):
    """Every bad photo gets a clear error naming its reason; every good one an answer."""
    from gradio_client import handle_file

    from tests.corpus import build_corpus, of_kind

    for case in of_kind(build_corpus(tmp_path / "corpus", videos=False), "image").values():
        if case.ok:
            top, _, details, _ = client.predict(handle_file(str(case.path)), PRODUCTS, False,
                                                api_name="/classify_product")
            assert "Most likely" in details and len(top["confidences"]) == 5, case.name
            continue
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(case.path)), PRODUCTS, False, api_name="/classify_product")
        assert case.reason in str(err.value).lower(), (case.name, str(err.value))


def test_feedback_survives_an_app_restart_and_exports(client, photo, home, tmp_path):
    from datasets import load_from_disk
    from gradio_client import handle_file

    from wildspace.classify.feedback import FeedbackStore
    from wildspace.services.detectors import DetectorService
    from wildspace.ui.app import build_app

    top, _, _, answer_id = client.predict(handle_file(str(photo)), PRODUCTS, False, api_name="/classify_product")
    client.predict(answer_id, "right", "", "looks right", api_name="/submit_feedback")
    predicted = next(lab for lab in PRODUCT_LABELS if display_name(lab) == top["label"])
    # a new app over the same data dir sees it
    build_app(DetectorService(_settings(home)), tmp_path / "out2")
    store = FeedbackStore(home / "feedback")
    rec = next(r for r in store.records() if r.comment == "looks right")
    assert rec.verdict == "right" and rec.label == predicted and rec.model == PRODUCTS and rec.image.is_file()
    ds = load_from_disk(str(store.export_dataset(tmp_path / "export", PRODUCT_LABELS)))
    row = next(r for r in ds if r["comment"] == "looks right")
    assert ds.features["label"].int2str(row["label"]) == predicted and row["image"].size == (120, 90)


def test_detect_image_with_species(client, shared_data):
    from gradio_client import handle_file

    img = shared_data / "camera-trap" / "megadetector-test" / ZEBRA
    _, table, json_file = client.predict(handle_file(str(img)), "coco-yolov5n", 0.3, "tiny-species", 0.0,
                                         api_name="/detect_image")
    assert table["headers"][-2:] == ["species", "species confidence"]
    assert [row[0] for row in table["data"]] == ["zebra"] * 3 and all(row[7] in SERENGETI for row in table["data"])
    doc = read_results(json_file)
    assert doc["classification_categories"]["2"] == "zebra"
    assert all(len(d["classifications"]) == 3 for d in doc["images"][0]["detections"])


def test_api_lists_the_new_endpoints(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert {"/classify_product", "/submit_feedback", "/detect_image"} <= set(info["named_endpoints"])


@pytest.mark.slow
@pytest.mark.skipif(not __import__("pathlib").Path("/usr/bin/chromium").exists(), reason="Debian chromium not installed")
def test_products_tab_in_a_real_browser(app, photo, tmp_path):
    """Upload → top classes → heat-map → feedback, clicked through in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app.local_url)
        page.get_by_role("tab", name="Products").click()
        page.locator("#products-input input[type=file]").set_input_files(str(photo))
        page.wait_for_selector("#products-input img", timeout=60_000)
        page.click("#products-run")
        page.wait_for_selector("#products-heatmap img", timeout=120_000)
        page.wait_for_function("() => (document.querySelector('#products-details')?.innerText || '')"
                               ".includes('Most likely')", timeout=60_000)
        page.locator("#products-verdict").get_by_text("wrong").click()
        page.locator("#products-comment textarea").fill("tiger claw replica")
        page.click("#products-send")
        page.wait_for_function("() => (document.querySelector('#products-thanks')?.innerText || '')"
                               ".includes('Thank you')", timeout=60_000)
        assert "saved as wrong (" in page.inner_text("#products-thanks")  # no label the user did not pick
        page.screenshot(path=str(tmp_path / "products.png"), full_page=True)
        browser.close()
    assert (tmp_path / "products.png").stat().st_size > 10_000
