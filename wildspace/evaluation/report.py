"""Write an evaluation report: ``report.json`` (everything, machine-readable) and
``report.md`` (a page people can read, with the plots beside it)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Sequence


def write_report(folder: str | Path, title: str, sections: Sequence[tuple[str, str]], data: dict) -> dict[str, Path]:
    """Write ``report.json`` and ``report.md`` into ``folder``; returns their paths.

    Args:
        sections: ``(heading, markdown body)`` pairs, in order.
        data: the JSON content (metrics, settings); a ``created`` time is added.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    j = folder / "report.json"
    j.write_text(json.dumps({"title": title, "created": now, **data}, indent=1, default=str), encoding="utf-8")
    body = [f"# {title}", "", f"Created {now} by wildspace.", ""]
    for heading, text in sections:
        body += [f"## {heading}", "", text.strip(), ""]
    md = folder / "report.md"
    md.write_text("\n".join(body), encoding="utf-8")
    return {"json": j, "markdown": md}
