"""cli.py: the command line: --config on either side of the subcommand, out-of-range options refused
with exit 2, shell completion that knows every command, and a --help with a description and an example
for every command."""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.cli import COMMANDS, build_parser, main
from archiver.emulator import Emulator
from tests.helpers import archiver_env, events_of, run_subprocess


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.fixture(autouse=True)
def no_leftover_log_handlers() -> Iterator[None]:
    yield
    logging.getLogger().handlers.clear()  # main() logs to the captured stdout, which closes


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run main(ARGV), which must refuse it as a usage error: exit 2, one line on stderr."""
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_cli_every_command_has_a_function() -> None:
    assert set(subcommands()) == set(COMMANDS)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--config", "before.toml", "status"], "before.toml"),
        (["status", "--config", "after.toml"], "after.toml"),
        (["--config", "before.toml", "run", "--config", "after.toml"], "after.toml"),  # the nearer wins
        (["run", "--dry-run"], None),
    ],
    ids=["before", "after", "both", "neither"],
)
def test_cli_config_is_accepted_before_and_after_the_subcommand(
    argv: list[str], expected: str | None
) -> None:
    args = build_parser().parse_args(argv)
    assert args.config == (Path(expected) if expected else None)


@pytest.mark.parametrize("position", ["before", "after"])
def test_cli_config_file_is_read_in_either_position(
    emulator: Emulator, tmp_path: Path, position: str
) -> None:
    config = tmp_path / "rc-archiver.toml"
    config.write_text('no_such_setting = "x"\n')
    env = archiver_env(emulator, tmp_path, (tmp_path / "archive").as_uri())
    argv = ["--config", str(config), "run"] if position == "before" else ["run", "--config", str(config)]
    result = run_subprocess(env, *argv, timeout=60)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    events = events_of(result.stdout)
    (summary,) = [e for e in events if e["event"] == "run_summary"]  # a run that could not start, too
    assert (summary["outcome"], summary["exit_code"]) == ("settings", 2)
    assert "no_such_setting" in summary["error"] and str(config) in summary["error"]
    assert "Traceback" not in result.stderr and emulator.stats.snapshot()["logins"] == 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--wait-lock", "-5"], "must be between 0 and 604800"),
        (["run", "--wait-lock=-5"], "must be between 0 and 604800"),
        (["verify", "--wait-lock", "-1"], "must be between 0 and 604800"),
        (["run", "--wait-lock", "soon"], "not a number of seconds"),
        (["verify", "--sample", "150"], "must be between 0 and 100"),
        (["verify", "--sample", "-1"], "must be between 0 and 100"),
        (["run", "--since", "yesterday"], "not an ISO 8601 date or time"),
        (["demo", "--calls", "0"], "must be at least 1"),
        (["completion", "fish"], "invalid choice"),
        ([], "required: COMMAND"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_cli_out_of_range_options_are_refused_with_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert says in usage_error(capsys, *argv)


@pytest.mark.parametrize(
    "argv", [["verify", "--sample", "100"], ["verify", "--sample", "0"], ["run", "--wait-lock", "0"]]
)
def test_cli_options_at_the_ends_of_their_range_are_accepted(argv: list[str]) -> None:
    build_parser().parse_args(argv)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_cli_completion_prints_a_script_naming_every_subcommand(
    capsys: pytest.CaptureFixture[str], shell: str
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert script.strip() and "rc-archiver" in script
    missing = [name for name in subcommands() if not re.search(rf"\b{name}\b", script)]
    assert missing == []
    assert "--wait-lock" in script and "--sample" in script  # options too


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_cli_every_subcommand_help_has_a_description_and_an_example(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([name, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith("usage: rc-archiver")
    description = rest.split("\n\n", 1)[0]
    assert len(description.split()) >= 5 and description[0].isupper()
    assert "example:" in text
    example = text.split("example:", 1)[1]
    assert f"rc-archiver {name}" in example


def top_level_help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal: make it an ordinary one
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    return capsys.readouterr().out


def test_cli_top_level_help_lists_the_commands_and_every_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = top_level_help(capsys, monkeypatch)
    assert all(name in text for name in subcommands())
    codes = text.split("exit codes:", 1)[1]
    for code in range(7):
        assert re.search(rf"\b{code}\s", codes), code


def test_cli_top_level_help_keeps_the_documentation_url_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "https://github.com/rc-archiver/rc-archiver" in top_level_help(capsys, monkeypatch)


def test_cli_retry_without_ids_or_all_is_a_usage_error_with_exit_2(tmp_path: Path) -> None:
    result = run_subprocess({"RC_ARCHIVER_STATE_PATH": str(tmp_path / "state.db")}, "retry", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--all" in result.stdout + result.stderr and not (tmp_path / "state.db").exists()
