"""The exit-code table, generated from archiver/errors.py (EXIT_CODES and EXIT_CODE_TEXTS) so it is
written once. The CLI epilog is rendered from it at run time; the reference page is a file:

    python -m archiver.exit_codes_docs --write   regenerate the table in docs/reference/exit-codes.md
    python -m archiver.exit_codes_docs --check   exit 1 naming each file that drifted from errors.py

A test runs the check, so a new exit code or a changed meaning without regenerated tables fails CI.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from archiver import generated_docs
from archiver.errors import EXIT_CODE_TEXTS, EXIT_CODES, EXIT_INCOMPLETE, EXIT_OK, ExitCodeText

REFERENCE = Path("docs/reference/exit-codes.md")
START_MARKER = "<!-- exit-codes:start -->"
END_MARKER = "<!-- exit-codes:end -->"
COMMAND = "python -m archiver.exit_codes_docs --write"
EPILOG_WIDTH = 100


@dataclass(frozen=True)
class ExitCodeDoc:
    code: int
    outcomes: tuple[str, ...]  # the run_summary outcomes (rc_archiver_last_run_outcome) it goes with
    text: ExitCodeText


def exit_code_docs() -> list[ExitCodeDoc]:
    """Every exit code, in order: 0 and 1, then each code EXIT_CODES names; each must be described."""
    codes = sorted({EXIT_OK, EXIT_INCOMPLETE, *(code for _, code, _ in EXIT_CODES), *EXIT_CODE_TEXTS})
    docs = []
    for code in codes:
        text = EXIT_CODE_TEXTS.get(code)
        if text is None:
            raise ValueError(f"exit code {code} has no entry in errors.EXIT_CODE_TEXTS: describe it there")
        named = [outcome for _, row_code, outcome in EXIT_CODES if row_code == code]
        outcomes = tuple(dict.fromkeys([*text.outcomes, *named]))
        if not outcomes:
            raise ValueError(f"exit code {code} has no outcome: add it to EXIT_CODES or EXIT_CODE_TEXTS")
        docs.append(ExitCodeDoc(code, outcomes, text))
    return docs


def epilog() -> str:
    """The CLI's `exit codes:` paragraph, wrapped as argparse's raw epilog shows it."""
    items = ", ".join(f"{doc.code} {doc.text.short}" for doc in exit_code_docs())
    return textwrap.fill(
        f"exit codes: {items}", width=EPILOG_WIDTH, subsequent_indent="  ", break_on_hyphens=False
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _outcomes(doc: ExitCodeDoc) -> str:
    return ", ".join(f"`{outcome}`" for outcome in doc.outcomes)


def reference_table() -> list[str]:
    rows = ["| code | outcome | meaning | what to do |", "|---|---|---|---|"]
    rows += [
        f"| {d.code} | {_outcomes(d)} | {_cell(d.text.meaning)} | {_cell(d.text.action)} |"
        for d in exit_code_docs()
    ]
    return rows


def block(table: list[str]) -> str:
    note = f"<!-- generated from archiver/errors.py by `{COMMAND}`; do not edit by hand -->"
    return "\n".join([START_MARKER, note, "", *table, END_MARKER])


def render(current: str, table: list[str], name: Path) -> str:
    """The text with the block between its markers regenerated."""
    return generated_docs.replace_block(current, START_MARKER, END_MARKER, block(table), name)


def _targets() -> list[tuple[Path, list[str]]]:
    return [(REFERENCE, reference_table())]


def drifted(root: Path) -> list[str]:
    """The files under root whose exit-code table differs from what errors.py generates."""
    stale = []
    for name, table in _targets():
        text = (root / name).read_text(encoding="utf-8")
        if text != render(text, table, name):
            stale.append(f"{name}: the exit-code table is out of date")
    return stale


def write(root: Path) -> None:
    for name, table in _targets():
        path = root / name
        path.write_text(render(path.read_text(encoding="utf-8"), table, name), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    return generated_docs.main(
        "archiver.exit_codes_docs", "the exit-code table, from errors.py", write, drifted, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
