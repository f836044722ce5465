"""Job ids are handed to the command line (`jobs status ID`): none may look like an option."""

from __future__ import annotations

import re

from wildspace.cli import build_parser
from wildspace.jobs.store import JobSpec, JobStore, new_job_id


def test_ids_are_hex_and_never_start_with_a_dash():
    ids = {new_job_id() for _ in range(5000)}
    ids |= {JobSpec(owner="a", kind="detect-images", inputs=[]).id for _ in range(500)}
    ids |= {JobStore.new_id() for _ in range(500)}
    assert len(ids) == 6000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_every_id_parses_as_the_positional_argument():
    parser = build_parser()
    for _ in range(200):
        job_id = new_job_id()
        assert parser.parse_args(["jobs", "status", job_id, "--json"]).id == job_id
