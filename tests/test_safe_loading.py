"""No project code unpickles a checkpoint freely: a file from a user or the Hub must not run code.

Every ``torch.load`` in the shipped code (``wildspace/``, ``workers/``, ``app.py``) passes
``weights_only=True`` literally; legacy YOLOv5 pickles go through the project's restricted
unpickler instead. ``weights_only=False`` appears in third-party code under ``.venv``
(lightning_fabric, pulled in by lightly), which the project never calls to load anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped_sources() -> list[Path]:
    files = [*sorted((ROOT / "wildspace").rglob("*.py")), *sorted((ROOT / "workers").rglob("*.py")), ROOT / "app.py"]
    return [f for f in files if f.is_file()]


def test_every_torch_load_is_weights_only():
    offenders = []
    for f in shipped_sources():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            kw = {k.arg: k.value for k in node.keywords}
            if "weights_only" in kw and not (isinstance(kw["weights_only"], ast.Constant) and kw["weights_only"].value is True):
                offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}: weights_only is not True")
            elif name == "load" and ast.unparse(node.func).endswith("torch.load") and "weights_only" not in kw:
                offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}: torch.load without weights_only=True")
    assert len(shipped_sources()) > 50
    assert offenders == []
