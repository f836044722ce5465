"""Model specs as data: one YAML file per model under ``models/``.

A spec says where the weights come from (a Hub repo pinned to a commit, and/or a URL),
how to check them (sha256), what the model expects (family, input size, labels) and how to
use it (thresholds, licence, card). Adding a model needs a file, not code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from wildspace.errors import UnknownName, UsageError, WildspaceError

TASKS = ("detect", "classify", "embed", "backbone", "match")
FAMILIES = ("yolov5-legacy", "ultralytics", "timm", "torchvision", "transformers", "kornia")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
PRETRAINED = ("imagenet", "reid", "self-supervised")
# learned local features (wildspace.reid.learned): ALIKED keypoints, LightGlue for them
MATCH_ARCHS = ("aliked-t16", "aliked-n16", "aliked-n16rot", "aliked-n32", "lightglue-aliked")


class SpecError(WildspaceError, ValueError):
    """A model spec file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str  # a 40-hex commit, never a branch name
    path_in_repo: str
    repo_type: str = "model"


@dataclass(frozen=True)
class WeightsSource:
    """Where a weight file comes from and how it is verified.

    ``sha256`` is ``None`` only when no hash is published; then the hash of the first
    download is recorded and any later file that differs is refused.
    """

    filename: str
    sha256: str | None
    sha256_note: str = ""
    md5: str | None = None
    size_bytes: int | None = None
    hub: HubSource | None = None
    url: str | None = None


@dataclass(frozen=True)
class Preprocessing:
    """What a network's weights expect of an image (the timm ``pretrained_cfg`` idea).

    ``mean``/``std``: RGB normalisation after scaling to [0, 1]; ``input_size``: the side in px
    the weights were trained at; ``interpolation``: the resize filter of the original
    recipe; ``crop_pct``: its centre-crop fraction at evaluation; ``fixed_input_size``: the
    network only takes ``input_size`` (Swin, ViT position embeddings).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    fixed_input_size: bool = False


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    family: str
    weights: WeightsSource
    input_size: int
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    license: str
    card: str
    version: str = ""
    stride: int = 32
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing | None = None

    @property
    def typical_threshold(self) -> float:
        return float(self.thresholds.get("typical", 0.2))

    @property
    def conservative_threshold(self) -> float:
        return float(self.thresholds.get("conservative", self.typical_threshold))


def _req(data: dict, key: str, where: str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise SpecError(f"{where}: missing required field '{key}'")
    return data[key]


def _triple(value: Any, key: str, where: str, positive: bool = False) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or (positive and any(v <= 0 for v in out)):
        raise SpecError(f"{where}: preprocessing.{key} must be three numbers"
                        + (" > 0" if positive else "") + f", got {value!r}")
    return out  # type: ignore[return-value]


def parse_preprocessing(data: Any, where: str) -> Preprocessing:
    """Validate a ``preprocessing:`` mapping (mean, std, input_size, interpolation, crop_pct).

    Raises:
        SpecError: naming the file and the bad key.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{where}: preprocessing must be a mapping (mean, std, input_size, interpolation)")
    unknown = set(data) - {"mean", "std", "input_size", "interpolation", "crop_pct", "fixed_input_size"}
    if unknown:
        raise SpecError(f"{where}: preprocessing has unknown keys {', '.join(sorted(unknown))}")
    for key in ("mean", "std", "input_size"):
        _req(data, key, where + " preprocessing")
    size = data["input_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise SpecError(f"{where}: preprocessing.input_size must be a positive integer, got {size!r}")
    interp = str(data.get("interpolation", "bilinear"))
    if interp not in INTERPOLATIONS:
        raise SpecError(f"{where}: preprocessing.interpolation '{interp}' is not one of {', '.join(INTERPOLATIONS)}")
    crop = float(data.get("crop_pct", 1.0))
    if not 0.0 < crop <= 1.0:
        raise SpecError(f"{where}: preprocessing.crop_pct must be in (0, 1], got {crop}")
    return Preprocessing(mean=_triple(data["mean"], "mean", where), std=_triple(data["std"], "std", where, True),
                         input_size=size, interpolation=interp, crop_pct=crop,
                         fixed_input_size=bool(data.get("fixed_input_size", False)))


def parse_spec(data: dict, where: str = "<spec>") -> ModelSpec:
    """Validate a spec mapping and build a :class:`ModelSpec`.

    Raises:
        SpecError: naming the file and the offending field.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a spec must be a mapping, got {type(data).__name__}")
    name = str(_req(data, "name", where))
    if not _NAME.match(name):
        raise SpecError(f"{where}: name '{name}' must be lowercase letters, digits, '-' or '.'")
    task = _req(data, "task", where)
    if task not in TASKS:
        raise SpecError(f"{where}: task '{task}' is not one of {', '.join(TASKS)}")
    family = _req(data, "family", where)
    if family not in FAMILIES:
        raise SpecError(f"{where}: family '{family}' is not one of {', '.join(FAMILIES)}")
    w = _req(data, "weights", where)
    sha = w.get("sha256")
    if sha is not None and not _HEX64.match(str(sha)):
        raise SpecError(f"{where}: weights.sha256 must be 64 lowercase hex digits or null")
    md5 = w.get("md5")
    if md5 is not None and not _HEX32.match(str(md5)):
        raise SpecError(f"{where}: weights.md5 must be 32 lowercase hex digits or absent")
    if sha is None and not w.get("sha256_note"):
        raise SpecError(f"{where}: weights.sha256 is null; say why in weights.sha256_note")
    hub = None
    if w.get("hub"):
        h = w["hub"]
        rev = str(_req(h, "revision", where + " weights.hub"))
        if not _HEX40.match(rev):
            raise SpecError(f"{where}: weights.hub.revision '{rev}' must be a 40-hex commit")
        hub = HubSource(
            repo_id=str(_req(h, "repo_id", where + " weights.hub")),
            revision=rev,
            path_in_repo=str(h.get("path_in_repo") or w.get("filename")),
            repo_type=str(h.get("repo_type", "model")),
        )
        if hub.repo_type not in ("model", "dataset", "space"):
            raise SpecError(f"{where}: weights.hub.repo_type '{hub.repo_type}' is not model/dataset/space")
    url = w.get("url")
    if url is not None and not str(url).startswith("https://"):
        raise SpecError(f"{where}: weights.url must be https://")
    if hub is None and url is None and not w.get("local_only"):
        raise SpecError(f"{where}: weights need a 'hub' source, a 'url', or local_only: true")
    weights = WeightsSource(
        filename=str(_req(w, "filename", where + " weights")),
        sha256=sha,
        sha256_note=str(w.get("sha256_note", "")),
        md5=md5,
        size_bytes=w.get("size_bytes"),
        hub=hub,
        url=url,
    )
    labels = tuple(str(x) for x in _req(data, "labels", where))
    if len(set(labels)) != len(labels):
        raise SpecError(f"{where}: labels must be unique")
    thresholds = {str(k): float(v) for k, v in (data.get("thresholds") or {}).items()}
    for k, v in thresholds.items():
        if not 0.0 <= v <= 1.0:
            raise SpecError(f"{where}: threshold '{k}'={v} is outside [0, 1]")
    card = str(_req(data, "card", where)).strip()
    input_size = int(_req(data, "input_size", where))
    if input_size <= 0:
        raise SpecError(f"{where}: input_size must be positive")
    pre = parse_preprocessing(data["preprocessing"], where) if data.get("preprocessing") is not None else None
    if task == "backbone":
        if family != "timm":
            raise SpecError(f"{where}: a backbone spec must be family timm (got '{family}')")
        if not data.get("arch"):
            raise SpecError(f"{where}: a backbone spec needs 'arch' (the timm architecture)")
        if pre is None:
            raise SpecError(f"{where}: a backbone spec needs 'preprocessing' (mean, std, input_size, interpolation)")
        if data.get("pretrained") not in PRETRAINED:
            raise SpecError(f"{where}: a backbone spec needs 'pretrained', one of {', '.join(PRETRAINED)}")
    if task == "match" and (family != "kornia" or data.get("arch") not in MATCH_ARCHS):
        raise SpecError(f"{where}: a match spec is family kornia with 'arch' one of {', '.join(MATCH_ARCHS)}")
    known = {"name", "task", "family", "weights", "labels", "thresholds", "card",
             "input_size", "license", "version", "stride", "preprocessing"}
    return ModelSpec(
        name=name, task=task, family=family, weights=weights, input_size=input_size,
        labels=labels, thresholds=thresholds, license=str(_req(data, "license", where)),
        card=card, version=str(data.get("version", "")), stride=int(data.get("stride", 32)),
        extra={k: v for k, v in data.items() if k not in known}, preprocessing=pre,
    )


def spec_to_dict(spec: ModelSpec) -> dict:
    """The inverse of :func:`parse_spec` (used to write user specs)."""
    w = spec.weights
    weights: dict[str, Any] = {"filename": w.filename, "sha256": w.sha256}
    if w.sha256_note:
        weights["sha256_note"] = w.sha256_note
    if w.md5:
        weights["md5"] = w.md5
    if w.size_bytes is not None:
        weights["size_bytes"] = w.size_bytes
    if w.hub:
        weights["hub"] = {"repo_id": w.hub.repo_id, "revision": w.hub.revision,
                          "path_in_repo": w.hub.path_in_repo, "repo_type": w.hub.repo_type}
    if w.url:
        weights["url"] = w.url
    if not w.hub and not w.url:
        weights["local_only"] = True
    out = {"name": spec.name, "task": spec.task, "family": spec.family, "version": spec.version,
           "weights": weights, "input_size": spec.input_size, "stride": spec.stride,
           "labels": list(spec.labels), "thresholds": dict(spec.thresholds),
           "license": spec.license, "card": spec.card}
    if spec.preprocessing is not None:
        p = spec.preprocessing
        out["preprocessing"] = {"mean": list(p.mean), "std": list(p.std), "input_size": p.input_size,
                                "interpolation": p.interpolation, "crop_pct": p.crop_pct,
                                "fixed_input_size": p.fixed_input_size}
    out.update(spec.extra)
    return out


def write_spec_file(spec: ModelSpec, path: Path) -> Path:
    """Save ``spec`` as YAML at ``path`` atomically (readers never see half a file)."""
    from wildspace.atomic import write_text_atomic

    return write_text_atomic(path, yaml.safe_dump(spec_to_dict(spec), sort_keys=False))


def load_spec_file(path: Path) -> ModelSpec:
    try:
        # libyaml's safe loader when PyYAML has it: the same documents, ~8x faster (every
        # command reads every spec)
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    spec = parse_spec(data, str(path))
    object.__setattr__(spec, "path", Path(path))
    return spec


class SpecRegistry:
    """All specs found in the given folders; later folders cannot shadow earlier names."""

    def __init__(self, dirs: Iterable[Path]):
        self._specs: dict[str, ModelSpec] = {}
        for d in dirs:
            d = Path(d)
            if not d.is_dir():
                continue
            for f in sorted(d.glob("*.yaml")):
                spec = load_spec_file(f)
                if spec.name in self._specs:
                    continue
                self._specs[spec.name] = spec

    def names(self, task: str | None = None) -> list[str]:
        return sorted(n for n, s in self._specs.items() if task is None or s.task == task)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownName(
                f"unknown model '{name}'; known models: {', '.join(self.names()) or 'none'}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __iter__(self):
        return iter(self._specs[n] for n in sorted(self._specs))

    def add(self, spec: ModelSpec) -> None:
        self._specs[spec.name] = spec


def model_name(text: str) -> str:
    """A spec name from free text: lowercase letters, digits, '-' and '.'."""
    name = re.sub(r"[^a-z0-9.\-]+", "-", text.lower()).strip("-.")
    if not name:
        raise UsageError(f"cannot make a model name from {text!r}; pass --name")
    return name
