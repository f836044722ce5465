"""The deployments form of the Batch and Review tabs: which camera was where and when, the
camera clocks' UTC offset and the event gap, for the Camtrap DP export. The same columns and
checks as ``python -m wildspace convert --deployments CSV --utc-offset … --event-gap …``: the
table is read by :func:`wildspace.formats.events.deployments_from_rows`, an uploaded CSV by
:func:`wildspace.formats.events.read_deployment_rows`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from wildspace.formats.camtrap_dp import PackageOptions, with_deployments
from wildspace.formats.events import (
    DEFAULT_EVENT_GAP,
    DEPLOYMENT_COLUMNS,
    DeploymentsError,
    deployments_from_rows,
    ignored_columns,
    read_deployment_rows,
)

HEADERS = list(DEPLOYMENT_COLUMNS)
HELP = """One row per camera deployment, as in `convert --deployments CSV` (or upload that CSV):
**deploymentID** (required); which files are its: **folder** (the start of the files' names, e.g.
`cardA` for a zip with `cardA/…`) or **filePattern** (a glob such as `NRC*.JPG`); **latitude**,
**longitude** (decimal degrees); **cameraID**, **locationName**; **deploymentStart**,
**deploymentEnd** (ISO, e.g. `2024-05-01T08:00:00`); **utcOffset** when this camera's clock
differs from the offset below. Files no row claims get a deployment per camera folder; an empty
table keeps that for all. Only the Camtrap DP and COCO exports use the form."""


@dataclass
class DeploymentsForm:
    """The form's components; :attr:`inputs` go to a handler that calls :func:`package_options`."""

    table: gr.Dataframe
    upload: gr.File
    utc_offset: gr.Textbox
    event_gap: gr.Number
    note: gr.Markdown

    @property
    def inputs(self) -> list:
        return [self.table, self.utc_offset, self.event_gap]


def build_form(prefix: str) -> DeploymentsForm:
    """An accordion with the table, a CSV upload that fills it, the UTC offset and the event gap."""
    with gr.Accordion("Deployments for the Camtrap DP export", open=False, elem_id=f"{prefix}-deployments"):
        gr.Markdown(HELP)
        upload = gr.File(label="Deployments CSV (fills the table)", file_types=[".csv"], type="filepath",
                         elem_id=f"{prefix}-deployments-csv")
        table = gr.Dataframe(value=empty_table(), headers=HEADERS, datatype="str", column_count=len(HEADERS),
                             type="pandas", interactive=True, label="Deployments (add rows as needed)",
                             elem_id=f"{prefix}-deployments-table")
        with gr.Row():
            utc_offset = gr.Textbox(value="+00:00", label="UTC offset of the camera clocks",
                                    info="e.g. +02:00; a row's utcOffset wins for its deployment",
                                    elem_id=f"{prefix}-utc-offset")
            event_gap = gr.Number(value=DEFAULT_EVENT_GAP, minimum=0, label="Event gap (seconds)",
                                  info="media further apart than this start a new event",
                                  elem_id=f"{prefix}-event-gap")
        note = gr.Markdown(elem_id=f"{prefix}-deployments-note")
    upload.upload(fill_from_csv, [upload], [table, note], api_name=False)  # type: ignore[arg-type]  # gradio takes False: private
    return DeploymentsForm(table, upload, utc_offset, event_gap, note)


def empty_table(rows: int = 2) -> list[list[str]]:
    return [[""] * len(HEADERS) for _ in range(rows)]


def table_rows(value: Any) -> list[dict]:
    """The table's rows as dicts keyed by its headers, from what Gradio passes (a pandas
    DataFrame) or what an API caller may send (``{"headers", "data"}``, a list of lists in
    :data:`HEADERS` order, or a list of dicts); empty: ``[]``."""
    if value is None:
        return []
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas
        return [dict(zip([str(c) for c in value.columns], row)) for row in value.itertuples(index=False)]
    if isinstance(value, dict):
        headers = [str(h) for h in value.get("headers") or HEADERS]
        return [dict(zip(headers, row)) for row in value.get("data") or []]
    rows = list(value)
    if all(isinstance(r, dict) for r in rows):
        return rows
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, (list, tuple)) or len(row) > len(HEADERS):
            raise gr.Error(f"Deployments row {i}: expected at most {len(HEADERS)} cells ({', '.join(HEADERS)}).")
    return [dict(zip(HEADERS, row)) for row in rows]


def form_values(table: Any, utc_offset: str | None, event_gap: Any) -> dict:
    """The form as plain values (JSON-safe: a queued job keeps them): ``rows``, ``utc_offset``,
    ``event_gap``, after checking them (``gr.Error`` otherwise)."""
    rows = [{str(k): _text(v) for k, v in r.items() if k is not None} for r in table_rows(table)]
    rows = [r for r in rows if any(v.strip() for v in r.values())]
    values = {"rows": rows, "utc_offset": (utc_offset or "").strip(),
              "event_gap": None if event_gap is None or event_gap == "" else event_gap}
    package_options(values, PackageOptions())
    return values


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def package_options(values: dict, base: PackageOptions) -> PackageOptions:
    """``base`` with the form's deployments, offset and gap (``gr.Error`` says which row and why)."""
    try:
        return with_deployments(base, values.get("rows") or (), values.get("utc_offset"), values.get("event_gap"))
    except DeploymentsError as exc:
        raise gr.Error(f"Deployments: {exc}") from None


def fill_from_csv(path: str | None):
    """An uploaded deployments CSV into the table (checked first: a bad file leaves the table as it was)."""
    if not path:
        return gr.update(), ""
    name = Path(path).name
    try:
        rows = read_deployment_rows(path)
        deployments = deployments_from_rows(rows, f"{name} line", 2)
    except DeploymentsError as exc:
        raise gr.Error(f"Deployments: {exc}") from None
    header = list(dict.fromkeys(k for r in rows for k in r))
    ignored = ignored_columns(header)
    data = [[r.get(h, "") for h in HEADERS] for r in rows if any(r.values())]
    note = f"{len(deployments)} deployment(s) from {name}."
    if ignored:
        note += f" Not used (Camtrap DP fields wildspace does not fill): {', '.join(ignored)}."
    import pandas as pd

    return pd.DataFrame(data or empty_table(1), columns=HEADERS), note
