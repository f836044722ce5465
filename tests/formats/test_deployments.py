"""Deployments as rows (the app's form, a queued job) and as a CSV (``convert --deployments``):
one reader, the same checks and the same messages."""

from __future__ import annotations

import dataclasses

import pytest

from wildspace.formats.camtrap_dp import PackageOptions, with_deployments
from wildspace.formats.events import (
    DEPLOYMENT_COLUMNS,
    DeploymentsError,
    deployments_from_rows,
    ignored_columns,
    parse_event_gap,
    read_deployment_rows,
    read_deployments_csv,
)

ROWS = [{"deploymentID": "north", "folder": "cardA", "latitude": "51.5", "longitude": "-0.12", "cameraID": "RC-1",
         "deploymentStart": "2016-01-01T00:00:00", "deploymentEnd": "2016-12-31T00:00:00"},
        {"deploymentID": "south", "folder": "cardB", "latitude": -1.25, "longitude": 36.8, "utcOffset": "+03:00"}]


def test_rows_and_csv_give_the_same_deployments(tmp_path):
    from_rows = deployments_from_rows(ROWS)
    assert [(d.deployment_id, d.folder, d.latitude, d.longitude) for d in from_rows] == [
        ("north", "cardA", 51.5, -0.12), ("south", "cardB", -1.25, 36.8)]
    p = tmp_path / "deployments.csv"
    p.write_text("deploymentID,folder,latitude,longitude,cameraID,deploymentStart,deploymentEnd,utc_offset\n"
                 "north,cardA,51.5,-0.12,RC-1,2016-01-01T00:00:00,2016-12-31T00:00:00,\n"
                 "south,cardB,-1.25,36.8,,,,+03:00\n", encoding="utf-8")
    assert read_deployments_csv(p) == from_rows
    rows = read_deployment_rows(p)  # what the app's upload puts into the form: the utc_offset alias named as ours
    assert rows[1]["utcOffset"] == "+03:00" and "utc_offset" not in rows[1]
    assert set(rows[0]) <= set(DEPLOYMENT_COLUMNS)


def test_blank_rows_are_skipped_and_cells_may_be_none_or_nan():
    rows = [{"deploymentID": "a", "latitude": None, "longitude": float("nan")},
            {k: "" for k in DEPLOYMENT_COLUMNS}, {"deploymentID": None}]
    (dep,) = deployments_from_rows(rows)
    assert dep.deployment_id == "a" and dep.latitude is None and dep.longitude is None
    assert deployments_from_rows([]) == []


@pytest.mark.parametrize("row, message", [
    ({"deploymentID": "x", "latitude": "95"}, r"row 1: latitude 95.0 is outside \[-90, 90\]"),
    ({"deploymentID": "x", "longitude": "east"}, r"row 1: longitude 'east' is not a number"),
    ({"deploymentID": "x", "utcOffset": "+25:00"}, r"row 1: UTC offset '\+25:00' is not like \+02:00"),
    ({"deploymentID": "x", "deploymentStart": "May 1st"}, r"row 1: deploymentStart 'May 1st' is not an ISO"),
    ({"deploymentID": "x", "deploymentStart": "2024-05-02T00:00:00", "deploymentEnd": "2024-05-01T00:00:00"},
     r"row 1: deploymentEnd .* is before deploymentStart"),
    ({"folder": "cardA"}, r"row 1: deploymentID is empty"),
    ({"deploymentID": "x", "latitutde": "5"}, r"unknown column 'latitutde' \(did you mean latitude\?"),
])
def test_bad_rows_say_which_row_and_why(row, message):
    with pytest.raises(DeploymentsError, match=message):
        deployments_from_rows([row])


def test_duplicate_ids_and_csv_line_numbers(tmp_path):
    with pytest.raises(DeploymentsError, match="row 2: deploymentID 'a' appears twice"):
        deployments_from_rows([{"deploymentID": "a"}, {"deploymentID": "a"}])
    p = tmp_path / "d.csv"
    p.write_text("deploymentID,camera\nx,RC-1\n", encoding="utf-8")
    with pytest.raises(DeploymentsError, match=r"d.csv: unknown column 'camera' \(did you mean cameraID\?"):
        read_deployments_csv(p)
    p.write_text("deploymentID,latitude\nx,1\ny,95\n", encoding="utf-8")
    with pytest.raises(DeploymentsError, match="d.csv line 3: latitude"):
        read_deployments_csv(p)
    p.write_text("deploymentID,latitude\nx,1,2\n", encoding="utf-8")
    with pytest.raises(DeploymentsError, match="d.csv line 2: more cells than the header"):
        read_deployments_csv(p)
    p.write_text("folder\ncardA\n", encoding="utf-8")
    with pytest.raises(DeploymentsError, match="needs a header with deploymentID"):
        read_deployments_csv(p)


def test_camtrap_dp_deployment_fields_are_accepted_and_named_as_ignored(tmp_path):
    p = tmp_path / "deployments.csv"  # e.g. the deployments table of an earlier package
    p.write_text("deploymentID,locationID,latitude,longitude,habitat\nx,L1,1,2,forest\n", encoding="utf-8")
    (dep,) = read_deployments_csv(p)
    assert (dep.latitude, dep.longitude) == (1.0, 2.0)
    assert ignored_columns(["deploymentID", "locationID", "habitat", "latitude"]) == ["locationID", "habitat"]


def test_event_gap_and_options_from_plain_values():
    assert parse_event_gap(None) == 60.0 and parse_event_gap("") == 60.0 and parse_event_gap("90") == 90.0
    for bad in ("-1", "soon", float("nan"), float("inf")):
        with pytest.raises(DeploymentsError, match="event gap"):
            parse_event_gap(bad)
    base = PackageOptions(missing_times="leave-out")
    opts = with_deployments(base, ROWS, utc_offset=" +02:00 ", event_gap=120)
    assert opts.utc_offset == "+02:00" and opts.event_gap == 120.0 and opts.missing_times == "leave-out"
    assert [d.deployment_id for d in opts.deployments] == ["north", "south"]
    assert with_deployments(base) == dataclasses.replace(base)  # nothing given: the defaults
    assert with_deployments(base, utc_offset="").utc_offset == "+00:00"
    with pytest.raises(DeploymentsError, match="UTC offset 'Mars'"):
        with_deployments(base, utc_offset="Mars")


def test_the_ignored_fields_come_from_the_bundled_official_schema():
    from wildspace.formats import camtrap_dp, events

    assert events._DEPLOYMENTS_SCHEMA == camtrap_dp.SCHEMA_DIR / "deployments-table-schema.json"
    assert "coordinateUncertainty" in ignored_columns(["coordinateUncertainty"])
