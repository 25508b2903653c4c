"""Chain of custody (issue 14): each run's manifest parts name the part before them by key and sha256;
`verify --manifests` walks the chain over several runs and names the first break, and any archived
recording no manifest lists. Against the emulator over HTTP, a folder destination and a real state."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.emulator import Emulator
from archiver.models import format_time
from tests.helpers import folder_env

Run = Callable[..., tuple[int, list[dict[str, Any]]]]
Report = Callable[..., tuple[int, str]]
NOW = datetime.now(UTC)
SINCE = format_time(NOW - timedelta(days=6))  # the emulator's calls lie within 3 days


def three_runs(emulator: Emulator, tmp_path: Path, run_archiver: Run) -> tuple[dict[str, str], list[Path]]:
    """Archive the emulator's calls in three runs (three windows): one manifest part each, oldest first."""
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    for until in (NOW - timedelta(days=2), NOW - timedelta(days=1), NOW):
        code, events = run_archiver(env, "run", "--since", SINCE, "--until", format_time(until))
        assert code == 0 and next(e for e in events if e["event"] == "run_summary")["archived"] > 0
    # Oldest first: run ids of the same second sort by their random tail, so by the headers' time.
    parts = sorted((dest / "_manifests").glob("*.jsonl"), key=lambda part: header(part)["written_at"])
    assert len(parts) == 3
    return env, parts


def header(part: Path) -> dict[str, Any]:
    return dict(json.loads(part.read_text().splitlines()[0]))


def link(part: Path, root: Path) -> dict[str, str]:
    return {"key": part.relative_to(root).as_posix(), "sha256": hashlib.sha256(part.read_bytes()).hexdigest()}


def rewrite(part: Path, lines: list[dict[str, Any]]) -> None:
    part.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


def set_head(env: dict[str, str], head: dict[str, str]) -> None:
    """What a forger with write access to the state would do: point the chain's head elsewhere."""
    with sqlite3.connect(env["RC_ARCHIVER_STATE_PATH"]) as db:
        db.execute(
            "UPDATE meta SET value = ? WHERE name = 'manifest_head'", (json.dumps(head, sort_keys=True),)
        )


def test_manifests_chain_links_every_run_and_verify_walks_it(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, report: Report
) -> None:
    env, parts = three_runs(emulator, tmp_path, run_archiver)
    root = parts[0].parent.parent
    assert header(parts[0])["previous"] is None
    assert header(parts[1])["previous"] == link(parts[0], root)
    assert header(parts[2])["previous"] == link(parts[1], root)
    code, out = report(env, "verify", "--manifests", "--since", SINCE)
    assert code == 0, out
    assert "manifests 3, chain breaks 0" in out and "chain " not in out.replace("chain breaks", "")


def out_of_order(env: dict[str, str], parts: list[Path]) -> str:
    """Make the middle part claim to be written after the newest, and re-link the chain around it so
    that every sha256 still matches: only the order is wrong."""
    root = parts[0].parent.parent
    middle = [json.loads(line) for line in parts[1].read_text().splitlines()]
    middle[0]["written_at"] = format_time(datetime.now(UTC) + timedelta(hours=1))
    rewrite(parts[1], middle)
    newest = [json.loads(line) for line in parts[2].read_text().splitlines()]
    newest[0]["previous"] = link(parts[1], root)
    rewrite(parts[2], newest)
    set_head(env, link(parts[2], root))
    return "is out of order"


def altered(env: dict[str, str], parts: list[Path]) -> str:
    parts[1].write_text(parts[1].read_text() + "{}\n")
    return "was altered"


def removed(env: dict[str, str], parts: list[Path]) -> str:
    parts[1].unlink()
    return "is missing"


BREAKS: dict[str, Callable[[dict[str, str], list[Path]], str]] = {
    "altered": altered,
    "removed": removed,
    "out of order": out_of_order,
}


@pytest.mark.parametrize("kind", list(BREAKS))
def test_manifests_verify_names_the_first_break(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, report: Report, kind: str
) -> None:
    env, parts = three_runs(emulator, tmp_path, run_archiver)
    why = BREAKS[kind](env, parts)
    code, out = report(env, "verify", "--manifests", "--since", SINCE)
    chain = [line for line in out.splitlines() if line.startswith("chain ")]
    assert code == 1
    assert len(chain) == 1 and f"chain    manifest _manifests/{parts[1].name} {why}" in chain[0], chain


def test_manifests_verify_names_an_archived_recording_no_manifest_lists(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, report: Report
) -> None:
    env, parts = three_runs(emulator, tmp_path, run_archiver)
    root = parts[0].parent.parent
    newest = [json.loads(line) for line in parts[2].read_text().splitlines()]
    dropped = newest.pop()  # the head part, rewritten without one line, the head moved to match
    rewrite(parts[2], newest)
    set_head(env, link(parts[2], root))
    code, out = report(env, "verify", "--manifests", "--since", SINCE)
    unlisted = [line.split()[1] for line in out.splitlines() if line.startswith("unlisted ")]
    assert code == 1 and unlisted == [dropped["recording_id"]]
    assert "chain breaks 0" in out
