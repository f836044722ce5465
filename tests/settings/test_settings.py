"""Settings are parsed from a mapping: the environment in production, a dict here."""

from __future__ import annotations

import pytest

from wildspace.errors import WildspaceError
from wildspace.settings import load_settings
from wildspace.settings.guards import SPACE_DEFAULTS, GuardError, Guards
from wildspace.settings.limits import MB, LimitError, Limits


def test_settings_from_a_mapping(tmp_path):
    s = load_settings({"WILDSPACE_HOME": str(tmp_path), "WILDSPACE_QUEUE": "redis://127.0.0.1:1/0",
                       "WILDSPACE_STORAGE": str(tmp_path / "st"), "WILDSPACE_LEASE_TTL": "7.5",
                       "WILDSPACE_MAX_PIXELS": "1000", "SPACE_ID": "org/x", "HF_TOKEN": "hf_x",
                       "WILDSPACE_FEATURE_CACHE": "0"})
    assert s.home == tmp_path and s.queue_url == "redis://127.0.0.1:1/0" and s.storage == tmp_path / "st"
    assert s.lease_ttl == 7.5 and s.max_pixels == s.limits.max_pixels == 1000
    assert s.public_space and not s.allow_training and not s.allow_custom_weights
    assert s.guards.heavy_per_visitor == SPACE_DEFAULTS["heavy_per_visitor"] and s.hf_token == "hf_x"
    assert not s.feature_cache


def test_numbers_are_read_once_with_units_and_named_errors():
    g = Guards.from_env({"WILDSPACE_REQUEST_DISK_MB": "5", "WILDSPACE_RESULT_HOURS": "0.5"})
    assert g.request_disk_bytes == 5 * MB and g.result_hours == 0.5 and g.waiting_per_visitor == 8
    lim = Limits.from_env({"WILDSPACE_MAX_FILE_MB": "3", "WILDSPACE_MAX_VIDEO_SECONDS": "2.5"})
    assert lim.max_file_bytes == 3 * MB and lim.max_video_seconds == 2.5
    for parse, var, error in ((Guards.from_env, "WILDSPACE_RESULT_HOURS", GuardError),
                              (Limits.from_env, "WILDSPACE_MAX_FILES", LimitError)):
        with pytest.raises(error, match=var) as caught:
            parse({var: "lots"})
        assert isinstance(caught.value, WildspaceError)
    with pytest.raises(WildspaceError, match="WILDSPACE_LEASE_TTL"):
        load_settings({"WILDSPACE_LEASE_TTL": "-1"})
