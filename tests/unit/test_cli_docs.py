"""The CLI reference is generated from the parser: every command and option is on the page, and a
page that drifted from cli.py is caught."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from archiver import cli_docs
from archiver.cli import build_parser
from tests.helpers import ROOT


def test_cli_docs_reference_matches_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_docs.main(["--check", "--root", str(ROOT)]) == 0, capsys.readouterr().err


def test_cli_docs_name_every_command_and_option() -> None:
    page = cli_docs.reference_page()
    commands = build_parser()._actions[-1]
    assert isinstance(commands, argparse._SubParsersAction)
    for name, parser in commands.choices.items():
        assert f"## `rc-archiver {name}`" in page, name
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page, f"{name} {option}"


def test_cli_docs_drift_is_detected_and_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / cli_docs.REFERENCE).parent.mkdir(parents=True)
    assert cli_docs.main(["--check", "--root", str(tmp_path)]) == 1  # no page at all
    assert cli_docs.main(["--write", "--root", str(tmp_path)]) == 0
    assert cli_docs.main(["--check", "--root", str(tmp_path)]) == 0

    def with_a_new_option() -> argparse.ArgumentParser:
        parser = build_parser()
        commands = parser._actions[-1]
        assert isinstance(commands, argparse._SubParsersAction)
        commands.choices["status"].add_argument("--brand-new", help="an option the page lacks")
        return parser

    monkeypatch.setattr(cli_docs, "build_parser", with_a_new_option)
    capsys.readouterr()
    assert cli_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/reference/cli.md" in capsys.readouterr().err
    cli_docs.write(tmp_path)
    assert (
        "| `--brand-new BRAND_NEW` | an option the page lacks |"
        in (tmp_path / cli_docs.REFERENCE).read_text()
    )
