"""The deployments form (Batch tab; also the Review tab's and a queued batch's Camtrap DP
export): two folder-mapped deployments given in the form reach the package, whose media map to
them and which validates against the official Camtrap DP profile; a deployments CSV fills the
form; bad input is a clear message before anything runs."""

from __future__ import annotations

import csv
import dataclasses
import time
import zipfile
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from tests.ui.conftest import MODEL
from wildspace.formats.camtrap_dp import validate_package
from wildspace.ui.deployments_form import HEADERS, fill_from_csv, form_values

pytestmark = pytest.mark.slow

# camera-trap photos with an EXIF capture time, in two card folders
CARDS = {"cardA/49.jpg": "ena24-small/49.jpg",
         "cardA/DCIM/100RECNX/idaho.jpg": "megadetector-test/idaho_camera_traps_loc_0062_loc_0062_im_004678.jpg",
         "cardB/channel.jpg": "megadetector-test/channel_islands_camera_traps_loc-h500ee05127658_007_194.jpg"}
FORM = [["north", "cardA", "", "51.5", "-0.12", "RC-1", "North ridge", "", "", ""],
        ["south", "cardB", "", "-1.25", "36.8", "RC-2", "", "2012-01-01T00:00:00", "2012-12-31T00:00:00", "+03:00"]]


@pytest.fixture
def two_cards(tmp_path, shared_data) -> Path:
    z = tmp_path / "cards.zip"
    with zipfile.ZipFile(z, "w") as f:
        for name, src in CARDS.items():
            f.write(shared_data / "camera-trap" / src, name)
    return z


def _table(rows=FORM) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HEADERS)  # what Gradio hands the handler


def _package(downloads, tmp_path: Path) -> Path:
    """The downloaded Camtrap DP zip, unpacked."""
    (zipped,) = [Path(p) for p in downloads if str(p).endswith("_camtrap_dp.zip")]
    out = tmp_path / f"unzipped-{zipped.stem}"
    with zipfile.ZipFile(zipped) as z:
        z.extractall(out)
    return out


def _rows(pkg: Path, table: str) -> list[dict]:
    with open(pkg / f"{table}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check_package(pkg: Path) -> None:
    """The form's two deployments, with their coordinates; every media in its deployment."""
    assert validate_package(pkg) == []
    deps = {d["deploymentID"]: d for d in _rows(pkg, "deployments")}
    assert set(deps) == {"north", "south"}
    assert (float(deps["north"]["latitude"]), float(deps["north"]["longitude"])) == (51.5, -0.12)
    assert (float(deps["south"]["latitude"]), float(deps["south"]["longitude"])) == (-1.25, 36.8)
    assert (deps["north"]["cameraID"], deps["north"]["locationName"]) == ("RC-1", "North ridge")
    assert deps["south"]["deploymentStart"] == "2012-01-01T00:00:00+03:00"
    media = {m["filePath"]: m for m in _rows(pkg, "media")}
    assert {f: m["deploymentID"] for f, m in media.items()} == {
        "cardA/49.jpg": "north", "cardA/DCIM/100RECNX/idaho.jpg": "north", "cardB/channel.jpg": "south"}
    # the form's UTC offset for north, the row's own for south
    assert media["cardA/49.jpg"]["timestamp"] == "2016-03-24T10:30:12+02:00"
    assert media["cardB/channel.jpg"]["timestamp"] == "2012-05-06T00:45:33+03:00"
    assert all(o["deploymentID"] in deps for o in _rows(pkg, "observations"))


def test_the_batch_form_gives_the_camtrap_dp_package_its_deployments(app_service, two_cards, tmp_path):
    from wildspace.ui.batch_tab import run_batch_tab

    *_, (summary, _, _, downloads) = run_batch_tab(
        app_service, [str(two_cards)], MODEL, 0.3, tmp_path / "out" / "batch", deployments=_table(),
        utc_offset="+02:00", event_gap=120)
    assert "3 files" in summary
    check_package(_package(downloads, tmp_path))


def test_the_review_tab_exports_the_batch_with_the_same_form(app_service, two_cards, tmp_path):
    from wildspace.ui.batch_tab import run_batch_tab
    from wildspace.ui.deployments_form import package_options
    from wildspace.ui.review_tab import REVIEW_PACKAGE, export_all, make_service

    list(run_batch_tab(app_service, [str(two_cards)], MODEL, 0.3, tmp_path / "out" / "batch", owner="alice"))
    backend = make_service(app_service.settings, tmp_path / "out")
    ((_, source),) = backend.sources.list("alice")
    backend.open("alice", "s", source, 0.3)
    backend.act("alice", "s", "empty", "Ann")  # one reviewed image: a human observation in the package
    package = package_options(form_values(_table(), "+02:00", 120), REVIEW_PACKAGE)
    files, _ = export_all(backend.opened("alice", source), tmp_path / "export", 0.3, "Ann",
                          app_service.settings.max_pixels, package=package)
    pkg = _package(files, tmp_path)
    check_package(pkg)
    assert any(o["classificationMethod"] == "human" for o in _rows(pkg, "observations"))


def test_a_deployments_csv_fills_the_form(tmp_path):
    p = tmp_path / "deployments.csv"  # another column order, the utc_offset spelling, a Camtrap DP field
    p.write_text("folder,deploymentID,latitude,longitude,cameraID,locationName,deploymentStart,deploymentEnd,"
                 "utc_offset,habitat\n"
                 "cardA,north,51.5,-0.12,RC-1,North ridge,,,,chalk grassland\n"
                 "cardB,south,-1.25,36.8,RC-2,,2012-01-01T00:00:00,2012-12-31T00:00:00,+03:00,\n",
                 encoding="utf-8")
    table, note = fill_from_csv(str(p))
    assert list(table.columns) == HEADERS and table.values.tolist() == FORM
    assert "2 deployment(s)" in note and "habitat" in note
    assert form_values(table, "+02:00", 120) == form_values(_table(), "+02:00", 120)

    p.write_text("deploymentID,folder,latitude\nnorth,cardA,95\n", encoding="utf-8")
    with pytest.raises(gr.Error, match=r"deployments.csv line 2: latitude 95.0 is outside \[-90, 90\]"):
        fill_from_csv(str(p))
    p.write_text("deploymentID,folder,camera\nnorth,cardA,RC-1\n", encoding="utf-8")
    with pytest.raises(gr.Error, match="unknown column 'camera' \\(did you mean cameraID"):
        fill_from_csv(str(p))
    assert fill_from_csv(None)[1] == ""


@pytest.mark.parametrize("change, message", [
    ({"deployments": _table([["north", "cardA", "", "95", "0", "", "", "", "", ""]])},
     r"Deployments: row 1: latitude 95.0 is outside \[-90, 90\]"),
    ({"deployments": pd.DataFrame([["north", "RC-1"]], columns=["deploymentID", "camera"])},
     "Deployments: unknown column 'camera'"),
    ({"deployments": _table([["north", "cardA", "", "", "", "", "", "", "", "+2h"]])},
     r"Deployments: row 1: UTC offset '\+2h' is not like \+02:00"),
    ({"deployments": _table([FORM[0], FORM[0]])}, "Deployments: row 2: deploymentID 'north' appears twice"),
    ({"utc_offset": "Mars"}, "Deployments: UTC offset 'Mars'"),
    ({"event_gap": -5}, "Deployments: the event gap must be a number of seconds >= 0"),
])
def test_bad_form_input_is_a_message_before_anything_runs(app_service, two_cards, tmp_path, change, message):
    from wildspace.ui.batch_tab import run_batch_tab

    given = {"deployments": _table(), "utc_offset": "+02:00", "event_gap": 60, **change}
    with pytest.raises(gr.Error, match=message):
        list(run_batch_tab(app_service, [str(two_cards)], MODEL, 0.3, tmp_path / "out", **given))
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_a_queued_batch_keeps_the_form_for_its_camtrap_dp_export(app_service, two_cards, tmp_path, monkeypatch):
    from wildspace.jobs.queue import JobQueue, start_local_worker
    from wildspace.ui.batch_tab import run_batch_tab
    from wildspace.ui.jobs_tab import job_results

    monkeypatch.setenv("WILDSPACE_STORAGE", str(tmp_path / "storage"))
    queue = JobQueue(dataclasses.replace(app_service.settings, storage=tmp_path / "storage"),
                     url=f"sqlite:///{tmp_path / 'q.db'}")
    ctx = start_local_worker(queue, app_service)
    try:
        ((summary, *_),) = run_batch_tab(app_service, [str(two_cards)], MODEL, 0.3, tmp_path / "out", queue=queue,
                                         owner="alice", queue_above=1, deployments=_table(), utc_offset="+02:00",
                                         event_gap=120)
        job_id = summary.split("queued as job `")[1].split("`")[0]
        deadline = time.monotonic() + 180
        while queue.store.status(job_id, "alice").state != "done":
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        ctx.shutdown()
    files = job_results(queue, job_id, "alice", tmp_path / "jobs-out", 0.3)
    check_package(_package(files, tmp_path))


def test_the_form_through_the_running_app(running_app, two_cards, tmp_path):
    """The Batch and Review tabs' endpoints take the form (what the browser sends)."""
    from gradio_client import Client, handle_file

    client = Client(running_app.local_url, verbose=False,
                    headers={"X-Wildspace-Token": "deployments-form-token-0123456789abcdef"})
    form = {"headers": HEADERS, "data": FORM}
    summary, _, _, downloads = client.predict(
        [handle_file(str(two_cards))], MODEL, 0.3, "none", 0.5, form, "+02:00", 120, api_name="/detect_batch")
    assert "3 files" in summary
    check_package(_package(downloads, tmp_path))
    bad = {"headers": HEADERS, "data": [["north", "cardA", "", "95", "", "", "", "", "", ""]]}
    with pytest.raises(Exception, match="latitude 95.0 is outside"):
        client.predict([handle_file(str(two_cards))], MODEL, 0.3, "none", 0.5, bad, "+02:00", 120,
                       api_name="/detect_batch")

    choices = client.predict(api_name="/review_sources")
    (_, source), = choices["choices"] if isinstance(choices, dict) else choices
    client.predict(source, 0.3, api_name="/review_open")
    files, _ = client.predict(0.3, "Ann", form, "+02:00", 120, api_name="/review_export")
    check_package(_package(files, tmp_path))
    with pytest.raises(Exception, match="UTC offset 'Mars'"):
        client.predict(0.3, "Ann", form, "Mars", 120, api_name="/review_export")
