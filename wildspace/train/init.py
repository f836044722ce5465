"""The initial weights of a training run: a pinned pretrained backbone, a local file, or random.

``--init`` (``train classifier`` and ``train reid``) takes:

- ``auto`` (default): the ImageNet backbone spec (``task: backbone``, ``pretrained: imagenet``)
  of the architecture when ``models/`` has one, else random weights;
- ``imagenet``: that backbone, or an error naming the architectures that have one;
- ``none`` (or ``random``): random weights;
- ``NAME``: a model spec: a backbone (e.g. ``megadescriptor-b-224``), a ``family: timm``
  embedder (``megadescriptor-l-384``, ``miewid-msv3``) or a classifier;
- ``FILE``: a local ``.safetensors`` / tensor state dict.

Spec weights come through the production path, :meth:`ModelStore.fetch`: an imported file,
the Hugging Face cache at the pinned commit, the Hub, the URL; always sha256-checked. Offline
without them the error is one line naming the ``models import`` command. What was used (name,
source, sha256) is stored in the run folder (``init.json``) so a resumed run and its model card
state the same initial weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from wildspace.errors import NotFound, UsageError
from wildspace.hub.specs import ModelSpec, SpecRegistry

INIT_FILE = "init.json"
INIT_WORDS = ("auto", "imagenet", "none", "random")
_PREFIXES = ("backbone.", "module.", "model.", "backbone_model.", "encoder.")


@dataclass(frozen=True)
class InitWeights:
    """Resolved initial weights. ``kind``: ``random``, ``spec`` (a model spec) or ``file``."""

    kind: str
    path: str | None = None
    name: str = ""
    sha256: str | None = None
    source: str = ""
    arch: str | None = None
    family: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_size: int | None = None
    fixed_input_size: bool = False

    def describe(self) -> str:
        """One line for the model card and the report."""
        if self.kind == "random":
            return "random (no pretrained backbone)"
        where = f" from {self.source}" if self.source else ""
        return f"{self.name}{where}, sha256 {self.sha256}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "InitWeights":
        data = json.loads(text)
        for k in ("mean", "std"):
            if data.get(k) is not None:
                data[k] = tuple(data[k])
        return cls(**data)


RANDOM = InitWeights("random")


def backbone_for(arch: str, registry: SpecRegistry, pretrained: str = "imagenet") -> ModelSpec | None:
    """The backbone spec with ``pretrained`` weights for the timm architecture ``arch``."""
    found = [s for s in registry if s.task == "backbone" and s.extra.get("arch") == arch
             and s.extra.get("pretrained") == pretrained]
    return found[0] if found else None


def spec_arch(init: str | None, registry: SpecRegistry) -> str | None:
    """The architecture a spec named by ``--init`` was trained with (``None`` otherwise)."""
    if init and init not in INIT_WORDS and init in registry:
        return registry.get(init).extra.get("arch")
    return None


def _source(spec: ModelSpec) -> str:
    h = spec.weights.hub
    if h:
        return f"{h.repo_id}@{h.revision[:12]}:{h.path_in_repo}"
    return spec.weights.url or "imported file"


def _from_spec(spec: ModelSpec, settings) -> InitWeights:
    from wildspace.hub.fetch import ModelStore, ModelUnavailable, sha256_file

    if spec.task not in ("backbone", "embed", "classify") or spec.family not in ("timm", "torchvision"):
        raise UsageError(f"--init {spec.name}: a {spec.family} {spec.task} model cannot start a timm/torchvision "
                         "network; use a backbone (`models list` shows task backbone) or a file")
    try:
        path = ModelStore(settings).fetch(spec)
    except ModelUnavailable as exc:
        raise ModelUnavailable(f"{exc}; or pass --init none to start from random weights") from None
    _check_config_json(spec, path)
    pre = spec.preprocessing
    mean = pre.mean if pre else tuple(spec.extra["mean"]) if spec.extra.get("mean") else None
    std = pre.std if pre else tuple(spec.extra["std"]) if spec.extra.get("std") else None
    return InitWeights("spec", str(path), spec.name, sha256_file(path), _source(spec), spec.extra.get("arch"),
                       spec.family, mean, std, pre.input_size if pre else spec.input_size,
                       bool(pre and pre.fixed_input_size))


def _check_config_json(spec: ModelSpec, weights: Path) -> None:
    """A timm repo's ``config.json`` beside the weights (same Hub snapshot) must name the
    spec's architecture: a wrong pin is a clear error, not a silently half-loaded network."""
    cfg = Path(weights).parent / "config.json"
    if spec.family != "timm" or not cfg.is_file():
        return
    try:
        arch = json.loads(cfg.read_text(encoding="utf-8")).get("architecture")
    except (ValueError, OSError):
        return
    if arch and spec.extra.get("arch") and arch != spec.extra["arch"]:
        raise UsageError(f"--init {spec.name}: the Hub snapshot's config.json says architecture '{arch}', "
                         f"the spec says '{spec.extra['arch']}'")


def resolve_init(init: str | None, arch: str, settings) -> InitWeights:
    """Turn an ``--init`` value into verified local weights (see the module docstring).

    Raises:
        ModelUnavailable: a known backbone is not on this machine and cannot be downloaded
            (one line, naming ``models import`` and ``--init none``).
        HashMismatch: the file found is not the pinned one.
        FileNotFoundError / ValueError: an unknown name, or no ImageNet backbone for ``arch``.
    """
    from wildspace.hub.fetch import sha256_file

    value = (init or "none").strip()
    if value in ("none", "random"):
        return RANDOM
    registry = SpecRegistry(settings.spec_dirs)
    if value in ("auto", "imagenet"):
        spec = backbone_for(arch, registry)
        if spec is None:
            if value == "auto":
                return RANDOM
            known = sorted({s.extra["arch"] for s in registry if s.task == "backbone"
                            and s.extra.get("pretrained") == "imagenet"})
            raise UsageError(f"--init imagenet: no ImageNet backbone is known for '{arch}'; known: "
                             f"{', '.join(known) or 'none'} (or --init FILE / --init none)")
        return _from_spec(spec, settings)
    if Path(value).is_file():
        p = Path(value)
        return InitWeights("file", str(p), p.name, sha256_file(p), str(p.resolve()))
    if value in registry:
        return _from_spec(registry.get(value), settings)
    raise NotFound(f"--init {value}: not a file, not a model name (`models list` shows them) and not "
                            f"one of {', '.join(INIT_WORDS)}")


def saved_or_resolved(out_dir: Path, init: str | None, arch: str, settings) -> InitWeights:
    """The run's initial weights: as recorded in ``out_dir/init.json`` (a resumed run), or
    resolved now and recorded there."""
    path = Path(out_dir) / INIT_FILE
    if path.is_file():
        return InitWeights.from_json(path.read_text(encoding="utf-8"))
    found = resolve_init(init, arch, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(found.to_json(), encoding="utf-8")
    tmp.replace(path)
    return found


def fit_state(state: dict, own: dict) -> dict:
    """The tensors of ``state`` that fit ``own`` (same name and shape), after stripping a
    wrapper prefix (``backbone.``, ``module.`` …) when that matches more names."""
    def fitting(s: dict) -> dict:
        return {k: v for k, v in s.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}

    best = fitting(state)
    for prefix in _PREFIXES:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        cand = fitting(stripped)
        if len(cand) > len(best):
            best = cand
    return best


def load_init(net, init: InitWeights) -> set[str]:
    """Copy what fits from the initial weights into ``net`` (a different head is skipped);
    returns the names loaded (empty for random).

    Raises:
        ValueError: fewer than half of the network's tensors fit (the wrong architecture).
    """
    if init.kind == "random" or not init.path:
        return set()
    from wildspace.classify.weights import read_tensors

    own = net.state_dict()
    fit = fit_state(read_tensors(init.path), own)
    if len(fit) < len(own) // 2:
        raise UsageError(f"--init {init.name}: only {len(fit)} of the network's {len(own)} tensors fit this "
                         "architecture; pick the arch the weights were trained with"
                         + (f" ({init.arch})" if init.arch else ""))
    net.load_state_dict(fit, strict=False)
    return set(fit)


def check_input_size(init: InitWeights, input_size: int) -> None:
    """A fixed-size backbone (Swin, ViT position embeddings) only takes its own input size."""
    if init.fixed_input_size and init.input_size and input_size != init.input_size:
        raise UsageError(f"--init {init.name} takes only {init.input_size} px input; pass --input-size "
                         f"{init.input_size}")
