"""The CLI reference, generated from the argparse parser (archiver/cli.py) so every command and option
is described once, where it is declared:

    python -m archiver.cli_docs --write   regenerate docs/reference/cli.md
    python -m archiver.cli_docs --check   exit 1 if the page drifted from the parser

It renders the parser's own parts (descriptions, examples, options, help texts) as Markdown rather
than copying `--help` output, whose layout changes between Python versions and terminal widths.
A test runs the check, so a new command or option without a regenerated page fails CI.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

from archiver import generated_docs
from archiver.cli import build_parser

REFERENCE = Path("docs/reference/cli.md")
COMMAND = "python -m archiver.cli_docs --write"

HEADER = f"""\
<!-- generated from archiver/cli.py by `{COMMAND}`; do not edit by hand -->
# CLI reference

Every command of `rc-archiver`, with its options, as `rc-archiver COMMAND --help` prints them.
Settings (the `RC_*` variables) are in [settings.md](settings.md), exit codes in
[exit-codes.md](exit-codes.md). Options given before the command (`--config`) apply to every command.
"""


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line summary) of each subcommand, depth first, in declaration order."""
    for action in parser._actions:  # argparse keeps its subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, summaries.get(name, "")
                yield from _subcommands(sub)


def _option_names(action: argparse.Action) -> str:
    """As `--help` names it, each spelling in code: `--since SINCE`, `--pessimistic`, `PATH`."""
    if not action.option_strings:  # a positional argument
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0:  # a flag (both spellings of a BooleanOptionalAction)
        return ", ".join(f"`{option}`" for option in action.option_strings)
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return ", ".join(f"`{option} {metavar}`" for option in action.option_strings)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(
            action, argparse._HelpAction | argparse._SubParsersAction
        ):
            continue
        meaning = action.help or ""
        if action.choices and not action.option_strings:
            meaning += f" (one of: {', '.join(map(str, action.choices))})"
        rows.append(f"| {_option_names(action)} | {_cell(meaning)} |")
    return ["| option | meaning |", "|---|---|", *rows] if rows else []


def _section(title: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## `{title}`", ""]
    description = parser.description or (f"{summary[:1].upper()}{summary[1:]}." if summary else "")
    if description:
        lines += [" ".join(description.split()), ""]
    if parser.epilog and parser.epilog.startswith("example:"):  # _command()'s examples, verbatim
        example = "\n".join(line.removeprefix("  ") for line in parser.epilog.splitlines()[1:])
        lines += ["```sh", example, "```", ""]
    table = _options_table(parser)
    return lines + ([*table, ""] if table else [])


def reference_page() -> str:
    parser = build_parser()
    lines = [HEADER, "## Commands", ""]
    commands = list(_subcommands(parser))
    # A heading `rc-archiver state backup` has the GitHub anchor rc-archiver-state-backup.
    lines += [f"- [`{sub.prog}`](#{sub.prog.replace(' ', '-')}): {summary}" for _, sub, summary in commands]
    lines.append("")
    lines += _section(parser.prog, parser, "")
    for _, sub, summary in commands:
        lines += _section(sub.prog, sub, summary)
    return "\n".join(lines).rstrip("\n") + "\n"


def drifted(root: Path) -> list[str]:
    page = root / REFERENCE
    if not page.exists() or page.read_text(encoding="utf-8") != reference_page():
        return [f"{REFERENCE}: out of date"]
    return []


def write(root: Path) -> None:
    (root / REFERENCE).write_text(reference_page(), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    return generated_docs.main(
        "archiver.cli_docs", "the CLI reference, from the parser", write, drifted, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
