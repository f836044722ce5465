"""The ``reid evaluate --report`` folder: report.json, report.md and a reliability plot."""

from __future__ import annotations

from pathlib import Path

from wildspace.evaluation.report import write_report
from wildspace.reid.calibration import plot_reliability


def _f(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def write_reid_report(folder: Path, result: dict) -> dict[str, Path]:
    """Write the report of one :func:`wildspace.reid.evaluate.leave_one_out` result."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "reliability.png"
    plot_reliability(result["reliability"], plot,
                     f"Top answers, {result['method']} ({result.get('calibration_pairs')} pairs)")
    keys = ("images", "identities", "encounters", "top1", "top5", "mAP", "baks", "baus",
            "threshold", "brier_top", "brier_pairs")
    table = "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {_f(result.get(k))} |" for k in keys)
    rel = "| P bin | answers | mean P | right |\n|---|---|---|---|\n" + "\n".join(
        f"| {c['low']:.1f}–{c['high']:.1f} | {c['count']} | {_f(c['predicted'])} | {_f(c['observed'])} |"
        for c in result["reliability"] if c["count"])
    sections = [
        ("Setting", f"Method `{result['method']}`, pooling `{result.get('pooling')}`, calibration "
                    f"`{result['calibration']}` fitted on {result.get('calibration_pairs')} pairs, "
                    f"each query's own animal left out of its calibration.\n\n{result['left_out']}."),
        ("Metrics", table),
        ("Reliability of the top answer",
         "The probability shown for each query's top candidate against how often that candidate "
         "was the right animal (Brier score `brier_top`; `brier_pairs` scores every identity "
         f"pair).\n\n![reliability]({plot.name})\n\n{rel}"),
    ]
    if "open_set" in result:
        o = result["open_set"]
        sections.append(("Open set", f"Gallery: {', '.join(o['gallery_identities'])}; kept out: "
                         f"{', '.join(o['unknown_identities'])}. Called new: {_f(o['new_rate'])} of "
                         f"{o['unknown_queries']} queries of kept-out animals; gallery animals from "
                         f"another encounter found: {_f(o['known_found'])} of {o['known_queries']} "
                         f"(top-1 {_f(o['known_top1'])})."))
    paths = write_report(folder, "Re-identification evaluation", sections, result)
    return {**paths, "reliability": plot}
