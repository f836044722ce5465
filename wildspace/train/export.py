"""Trained models out: safetensors weights + a model spec + a model card, installed so the
rest of the app loads them like any other model, and optionally pushed to the Hub.

A model folder holds ``<name>.safetensors``, ``<name>.yaml`` (the spec, ``local_only``
weights with their sha256), ``README.md`` (the card: data, metrics, licence) and
``metrics.json``. :func:`install_model` copies the weights into the model store and the spec
into ``<data dir>/specs/``; :func:`push_to_hub` uploads the folder with a token and pins the
installed spec to the commit it made.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wildspace.errors import UsageError
from wildspace.hub.specs import HubSource, ModelSpec, WeightsSource, parse_spec, write_spec_file


@dataclass(frozen=True)
class ExportedModel:
    folder: Path
    spec: ModelSpec
    weights: Path


def write_model_folder(folder: str | Path, net, spec_fields: dict[str, Any], card: str,
                       metrics: dict | None = None) -> ExportedModel:
    """Write weights, spec and card into ``folder``.

    Args:
        spec_fields: spec keys except ``weights`` and ``card`` (name, task, family,
            input_size, labels, thresholds, license, version and extra keys such as ``arch``).
        card: the model card's Markdown body (front matter is added here).

    Raises:
        SpecError: the fields do not make a valid spec (checked before anything is written).
    """
    from wildspace.classify.models import save_classifier_weights
    from wildspace.hub.fetch import sha256_file

    folder = Path(folder)
    name = spec_fields["name"]
    parse_spec({**spec_fields, "card": card[:200] or name,
                "weights": {"filename": "x", "sha256": None, "sha256_note": "check", "local_only": True}},
               where=f"model '{name}'")
    weights = save_classifier_weights(net, folder / f"{name}.safetensors",
                                      metadata={"wildspace_model": name})
    short_card = _short_card(spec_fields, metrics)
    data = {**spec_fields, "weights": {"filename": weights.name, "sha256": sha256_file(weights),
                                       "size_bytes": weights.stat().st_size, "local_only": True},
            "card": short_card}
    spec = parse_spec(data, where=f"model '{name}'")
    write_spec_file(spec, folder / f"{name}.yaml")
    (folder / "README.md").write_text(_front_matter(spec) + card.strip() + "\n", encoding="utf-8")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return ExportedModel(folder, spec, weights)


def _short_card(fields: dict, metrics: dict | None) -> str:
    today = _dt.date.today().isoformat()
    text = (f"{fields.get('kind', fields['task'])} model trained with wildspace on {today}: "
            f"{fields.get('family')} {fields.get('arch', '')}, {len(fields.get('labels', []))} classes.")
    if metrics and metrics.get("accuracy") is not None:
        text += (f" Held-out accuracy {metrics['accuracy']:.3f}, macro accuracy "
                 f"{metrics['macro_accuracy']:.3f} on {metrics['samples']} images.")
    return text + " See README.md beside the weights."


def _front_matter(spec: ModelSpec) -> str:
    meta = {"license": _hub_licence(spec.license), "library_name": "wildspace",
            "tags": ["wildlife", "wildspace", spec.task],
            "pipeline_tag": "image-classification" if spec.task == "classify" else "image-feature-extraction"}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"


def _hub_licence(text: str) -> str:
    t = text.strip().lower()
    return t if t in {"mit", "apache-2.0", "cc-by-4.0", "cc-by-nc-4.0", "cc-by-sa-4.0", "cc0-1.0",
                      "agpl-3.0", "gpl-3.0", "bsd-3-clause"} else "other"


def install_model(exported: ExportedModel, settings, replace: bool = False) -> ModelSpec:
    """Copy the weights into the model store and the spec into ``<data dir>/specs/``.

    Raises:
        ValueError: a built-in or other model already has that name (and ``replace`` is off).
    """
    from wildspace.hub.fetch import ModelStore
    from wildspace.hub.specs import SpecRegistry

    spec = exported.spec
    target = settings.user_specs_dir / f"{spec.name}.yaml"
    registry = SpecRegistry(settings.spec_dirs)
    if spec.name in registry:
        existing = registry.get(spec.name)
        own = existing.path is not None and existing.path.resolve() == target.resolve()
        # the same weights installed again (a job resumed after its install) is no conflict
        same = own and existing.weights.sha256 is not None and existing.weights.sha256 == spec.weights.sha256
        if not ((replace and own) or same):
            raise UsageError(f"a model named '{spec.name}' exists already; choose another --name"
                             + (" (or --replace to overwrite your own)" if existing.path == target else ""))
    ModelStore(settings).import_file(spec, exported.weights)
    write_spec_file(spec, target)
    object.__setattr__(spec, "path", target)
    return spec


def push_to_hub(exported: ExportedModel, repo_id: str, token: str | None, private: bool = True,
                settings=None, api=None) -> str:
    """Upload the model folder to the Hub model repo ``repo_id``; returns the commit id.

    When ``settings`` is given, the installed spec is rewritten to fetch from that commit, so
    other machines can use the same spec file.

    Raises:
        ValueError: no token (pass ``--token`` or set ``HF_TOKEN``) or a malformed repo id.
    """
    if not token:
        raise UsageError("pushing to the Hub needs a token with write access: --token or HF_TOKEN")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UsageError(f"repo '{repo_id}' must look like owner/name")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True, token=token)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(exported.folder), repo_type="model",
                             commit_message=f"wildspace: {exported.spec.name}", token=token)
    commit = str(getattr(info, "oid", "") or "")
    if settings is not None and len(commit) == 40:
        w = exported.spec.weights
        pinned = WeightsSource(filename=w.filename, sha256=w.sha256, size_bytes=w.size_bytes,
                               hub=HubSource(repo_id, commit, w.filename))
        spec = ModelSpec(**{**exported.spec.__dict__, "weights": pinned, "path": None})
        target = settings.user_specs_dir / f"{spec.name}.yaml"
        if target.is_file():
            write_spec_file(spec, target)
    return commit
