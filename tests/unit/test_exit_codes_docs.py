"""The exit-code table is written once (errors.py); the CLI epilog and both READMEs are generated from it."""

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
    readme = (ROOT / "README.md").read_text()
    deploy = (ROOT / "deploy" / "README.md").read_text()
    epilog = build_parser().epilog or ""
    for code in codes:
        text = EXIT_CODE_TEXTS[code]
        assert re.search(rf"^\| {code} \|.*\| {re.escape(text.meaning)} \|$", readme, re.M), code
        row = rf"^\| {code} \|.*\| {re.escape(text.meaning)} \| {re.escape(text.action)} \|$"
        assert re.search(row, deploy, re.M), code
        assert f"{code} {text.short}" in " ".join(epilog.split()), code
    for _, code, outcome in EXIT_CODES:  # the outcome column names the run_summary outcome
        assert re.search(rf"^\| {code} \|[^|]*`{outcome}`", deploy, re.M), outcome


def test_exit_code_drift_is_detected_and_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (exit_codes_docs.README, exit_codes_docs.DEPLOY_README):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setitem(EXIT_CODE_TEXTS, 5, ExitCodeText("locked", "another run holds it", "wait for it"))
    assert len(exit_codes_docs.drifted(tmp_path)) == 2
    assert exit_codes_docs.main(["--check", "--root", str(tmp_path)]) == 1
    exit_codes_docs.write(tmp_path)
    assert exit_codes_docs.drifted(tmp_path) == []
    assert (
        "| 5 | `lock` | another run holds it | wait for it |" in (tmp_path / "deploy/README.md").read_text()
    )


def test_exit_code_without_a_description_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(EXIT_CODE_TEXTS, 6)
    with pytest.raises(ValueError, match="exit code 6"):
        exit_codes_docs.exit_code_docs()
