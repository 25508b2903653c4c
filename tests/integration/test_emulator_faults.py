"""The emulator's per-test faults come from one table (archiver/emulator/faults.py, FAULTS): each is a
field of EmulatorConfig and a flag of `rc-archiver emulator`, and each of its values changes what the
request of its stage answers. A row added to the table without the config field, or without the branch in
its route that honours it, fails here: the edits docs/contributing.md names for "Add an emulator fault?",
and no others (the flag follows from the table)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields

import pytest
import requests

from archiver.emulator import Emulator, EmulatorConfig
from archiver.emulator.cli import add_arguments, config_from_args
from archiver.emulator.faults import FAULTS, STAGES
from tests.helpers import login

CAN_DELETE = "ReadCallLog ReadCallRecording EditCallLog"
CASES = [
    (name, value)
    for name, fault in FAULTS.items()
    for value in fault.values
    if value != getattr(EmulatorConfig(), name, "")  # the default value is the fault switched off
]


def _answer(emu: Emulator, stage: str) -> tuple[object, ...]:
    """What the request of `stage` answers, reduced to what a fault may change: its status, how its body
    is delimited, or no reply at all."""
    if stage == "token":
        return (login(emu).status_code,)
    bearer = {"Authorization": f"Bearer {login(emu).json()['access_token']}"}
    victims = sorted(emu.state.data.recordings)[:3]
    try:
        if stage == "call-log":
            reply = requests.get(
                f"{emu.url}/restapi/v1.0/account/~/call-log",
                params={"dateFrom": "2000-01-01T00:00:00Z"},
                headers=bearer,
                timeout=10,
            )
        elif stage == "content":
            reply = requests.get(
                f"{emu.media_url}/restapi/v1.0/account/~/recording/{victims[0]}/content",
                headers=bearer,
                timeout=10,
            )
            return reply.status_code, "Content-Length" in reply.headers
        else:
            reply = requests.delete(
                f"{emu.url}/restapi/v1.0/account/~/call-recordings",
                json={"records": victims},
                headers=bearer,
                timeout=10,
            )
    except requests.ConnectionError:
        return ("no reply",)
    return (reply.status_code,)


def test_every_named_fault_is_a_config_field_and_a_flag_with_its_values() -> None:
    config_fields = {item.name for item in fields(EmulatorConfig)}
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for name, fault in FAULTS.items():
        assert name in config_fields, f"faults.FAULTS[{name!r}] has no EmulatorConfig field"
        assert fault.stage in STAGES
        for value in fault.values:
            args = parser.parse_args([f"--{name.replace('_', '-')}", value])
            assert getattr(config_from_args(args), name) == value
    # And a flag not given leaves the fault off.
    assert all(
        getattr(config_from_args(parser.parse_args([])), name) == getattr(EmulatorConfig(), name)
        for name in FAULTS
    )


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_every_value_of_every_named_fault_changes_what_its_stage_answers(
    emulator_factory: Callable[..., Emulator], name: str, value: str
) -> None:
    stage = FAULTS[name].stage
    healthy = _answer(emulator_factory(scope=CAN_DELETE, media_group="heavy"), stage)
    broken = _answer(emulator_factory(scope=CAN_DELETE, media_group="heavy", **{name: value}), stage)
    assert broken != healthy, f"{name}={value} changed nothing at the {stage} stage: {healthy}"
