"""The form an S3-hosted state is saved in (RC_ARCHIVER_STATE_REPLICATION): `auto` switches to the
incremental form at AUTO_INCREMENTAL_FROM bytes, and never back."""

from __future__ import annotations

import pytest

from archiver.state_forms import AUTO_INCREMENTAL_FROM, Replication, ReplicationSetting, form_for

LARGE = AUTO_INCREMENTAL_FROM


@pytest.mark.parametrize(
    ("setting", "current", "size", "form"),
    [
        ("snapshot", None, LARGE * 100, "snapshot"),  # an explicit setting is obeyed at any size
        ("snapshot", "incremental", 0, "snapshot"),
        ("incremental", None, 0, "incremental"),
        ("auto", None, 0, "snapshot"),  # a new state starts as one object
        ("auto", "snapshot", LARGE - 1, "snapshot"),
        ("auto", "snapshot", LARGE, "incremental"),  # grown past the threshold
        ("auto", "incremental", 0, "incremental"),  # saved in chunks: stays so, however small
    ],
)
def test_form_for_switches_auto_once_large_and_never_back(
    setting: ReplicationSetting, current: Replication | None, size: int, form: Replication
) -> None:
    assert form_for(setting, current, size) == form
