"""The benchmark's table (Markdown, as the README's performance section shows it): our rows alone, or
beside another commit's with the ratio of each row's value (ours / theirs)."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench.workloads import Row


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"rc-archiver benchmark, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, {cpu}, "
        f"Python {platform.python_version()}"
    )


def alone(rows: list[Row]) -> list[str]:
    lines = ["| measure | ours | naive baseline | target |", "|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.shown} | {r.naive} | {r.target} |" for r in rows]
    return lines


def side_by_side(ours: list[Row], theirs: list[Row], rev: str) -> list[str]:
    """Rows matched by their measure; a row one side lacks shows as `(no such row)` there."""
    by_measure = {row.measure: row for row in theirs}
    lines = [
        f"| measure | ours | {rev} | ours / {rev} | naive baseline | target |",
        "|---|---|---|---|---|---|",
    ]
    for row in ours:
        other = by_measure.pop(row.measure, None)
        shown = other.shown if other else "(no such row)"
        lines.append(
            f"| {row.measure} | {row.shown} | {shown} | {ratio(row, other)} | {row.naive} | {row.target} |"
        )
    lines += [
        f"| {r.measure} | (no such row) | {r.shown} | | {r.naive} | {r.target} |" for r in by_measure.values()
    ]
    return lines


def ratio(ours: Row, theirs: Row | None) -> str:
    if theirs is None:
        return ""
    if theirs.value == 0:
        return "=" if ours.value == 0 else "(theirs 0)"
    return f"{ours.value / theirs.value:.2f}"
