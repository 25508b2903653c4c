"""The exit-code table is written once (errors.py); the CLI epilog and the reference page come from it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from archiver import exit_codes_docs
from archiver.cli import build_parser
from archiver.errors import EXIT_CODE_TEXTS, EXIT_CODES, ExitCodeText
from tests.helpers import ROOT


def test_exit_code_tables_match_errors_py() -> None:
    """Fails when errors.py changed and the tables were not regenerated (the fix is in the message)."""
    assert exit_codes_docs.drifted(ROOT) == [], f"run: {exit_codes_docs.COMMAND}"
    assert exit_codes_docs.main(["--check", "--root", str(ROOT)]) == 0


def test_exit_code_every_code_of_the_table_is_described_everywhere() -> None:
    codes = {0, 1, *(code for _, code, _ in EXIT_CODES)}
    assert codes == set(EXIT_CODE_TEXTS)
    reference = (ROOT / exit_codes_docs.REFERENCE).read_text()
    epilog = build_parser().epilog or ""
    for code in codes:
        text = EXIT_CODE_TEXTS[code]
        row = rf"^\| {code} \|.*\| {re.escape(text.meaning)} \| {re.escape(text.action)} \|$"
        assert re.search(row, reference, re.M), code
        assert f"{code} {text.short}" in " ".join(epilog.split()), code
    for _, code, outcome in EXIT_CODES:  # the outcome column names the run_summary outcome
        assert re.search(rf"^\| {code} \|[^|]*`{outcome}`", reference, re.M), outcome


def test_exit_code_drift_is_detected_and_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / exit_codes_docs.REFERENCE
    page.parent.mkdir(parents=True)
    shutil.copy(ROOT / exit_codes_docs.REFERENCE, page)
    monkeypatch.setitem(EXIT_CODE_TEXTS, 5, ExitCodeText("locked", "another run holds it", "wait for it"))
    assert len(exit_codes_docs.drifted(tmp_path)) == 1
    assert exit_codes_docs.main(["--check", "--root", str(tmp_path)]) == 1
    prose = page.read_text().split("<!-- exit-codes:end -->")[1]
    exit_codes_docs.write(tmp_path)
    assert exit_codes_docs.drifted(tmp_path) == []
    assert "| 5 | `lock` | another run holds it | wait for it |" in page.read_text()
    assert page.read_text().split("<!-- exit-codes:end -->")[1] == prose  # the page's own text is kept


def test_exit_code_without_a_description_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(EXIT_CODE_TEXTS, 6)
    with pytest.raises(ValueError, match="exit code 6"):
        exit_codes_docs.exit_code_docs()
