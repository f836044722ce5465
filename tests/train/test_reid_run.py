"""train reid end to end on a tiny synthetic set: embedder loads through the production path."""

from __future__ import annotations

import json

import numpy as np


def test_train_reid_cli_installs_an_embedder(tmp_path, monkeypatch):
    from PIL import Image

    from wildspace.cli import main
    from wildspace.reid.embedders import load_embedder

    rng = np.random.default_rng(0)
    rows = ["file,identity"]
    (tmp_path / "img").mkdir()
    for ident, colour in enumerate([(200, 40, 40), (40, 40, 200), (40, 200, 40)]):
        for n in range(6):
            img = np.clip(np.array(colour) + rng.normal(0, 25, (36, 36, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "img" / f"{ident}_{n}.png")
            rows.append(f"{ident}_{n}.png,cat{ident}")
    (tmp_path / "ids.csv").write_text("\n".join(rows))
    rc = main(["train", "reid", "--data", str(tmp_path / "img"), "--identities", str(tmp_path / "ids.csv"),
               "--name", "tiny-reid", "--backbone", "test_resnet", "--epochs", "2", "--input-size", "32",
               "--identities-per-batch", "3", "--images-per-identity", "2", "--output", str(tmp_path / "run")])
    assert rc == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert report["test"]["queries"] == 6 and report["knn"]["params"]["n_neighbors"] >= 1
    emb = load_embedder("tiny-reid")
    assert emb.embed([np.zeros((32, 32, 3), np.uint8)]).shape[0] == 1
    rc = main(["evaluate", "reid", "--model", "tiny-reid", "--data", str(tmp_path / "img"),
               "--identities", str(tmp_path / "ids.csv"), "--output", str(tmp_path / "ev")])
    assert rc == 0 and "top-1" in (tmp_path / "ev" / "report.md").read_text()

    # --push-to-hub: refused before training without a token; with one, the finished run's
    # model folder (embedder + kNN head + card) goes up and the installed spec is pinned to it
    args = ["train", "reid", "--data", str(tmp_path / "img"), "--identities", str(tmp_path / "ids.csv"),
            "--name", "tiny-reid", "--backbone", "test_resnet", "--epochs", "2", "--input-size", "32",
            "--identities-per-batch", "3", "--images-per-identity", "2", "--output", str(tmp_path / "run"),
            "--push-to-hub", "me/tiny-reid"]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(args) == 1
    uploads = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            pass

        def upload_folder(self, repo_id, folder_path, **kw):
            uploads.append((repo_id, sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())))
            return type("Info", (), {"oid": "b" * 40})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert main(args + ["--token", "tok"]) == 0  # the run is complete: resumed, same weights re-installed
    assert uploads[0][0] == "me/tiny-reid" and {"knn_head.json", "tiny-reid.yaml", "README.md"} <= set(uploads[0][1])
    from wildspace.hub.specs import SpecRegistry
    from wildspace.settings import load_settings

    assert SpecRegistry(load_settings().spec_dirs).get("tiny-reid").weights.hub.revision == "b" * 40
