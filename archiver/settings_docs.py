"""The settings' documentation, generated from the model so it is written once (in archiver/settings.py).

    python -m archiver.settings_docs --write   regenerate docs/reference/settings.md's table, the example TOML
    python -m archiver.settings_docs --check   exit 1 naming each file that drifted from the model

A test runs the check, so a new setting without regenerated documentation fails CI.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic.fields import FieldInfo

from archiver import generated_docs
from archiver.settings import DURATION_BOUNDS, ENV_NAMES, GROUPS, SECRET_FIELDS, Settings, format_duration

REFERENCE = Path("docs/reference/settings.md")
EXAMPLE = Path("config/rc-archiver.example.toml")
START_MARKER = "<!-- settings:start -->"
END_MARKER = "<!-- settings:end -->"
COMMAND = "python -m archiver.settings_docs --write"
TOML_WIDTH = 100

REFERENCE_NOTES = """\
**Checked before anything happens.** Every setting is validated when it is loaded: a bad one is one line
naming its variable, exit 2, before any lock, login or download. Empty secrets, zero or negative timeouts,
intervals, concurrency and attempts are refused.

**Durations need a unit:** `500ms`, `30s`, `90m`, `24h`, `7d`, or combined, `1h30m`. A bare number is
refused (`RC_ARCHIVER_DELETE_AFTER=7` would be 7 what?), except `0`, the same in every unit; so are TOML
numbers (write `"7d"`), negative, infinite or NaN values, and anything over the setting's own ceiling
(shown above), which keeps every date computed from a duration far from overflowing.

**The key template cannot lose audio.** It is rendered at start with hostile call-log values (`..`, `/`,
`\\`, control characters, 3,000-character names) in every placeholder, and refused if any rendering could
escape the prefix, hold an empty or `..` segment, or exceed 900 bytes. It must end in `.{ext}`: the sidecar
key is the key with `.json` in place of `.{ext}`, and `{ext}` is only ever `mp3`, `wav` or `bin`, so no
recording's key can be its sidecar's (a template such as `{recording_id}.json` is refused)."""

TOML_HEADER = f"""\
# rc-archiver settings: every one, generated from archiver/settings.py by
#   {COMMAND}
# (edit the model, not this file: CI checks it is current). Copy it and change what you need.
#
# Each key is a setting's name; its environment variable is named above it, and the environment wins
# over this file. Pass the file with --config PATH or RC_ARCHIVER_CONFIG. Commented lines show the
# default (or an example where there is none) and leave the default in force.
#
# Secrets are NOT read from this file (it tends to end up in version control). Give them as
#   RC_CLIENT_SECRET / RC_JWT                 environment variables, or
#   client_secret_file / jwt_file             paths of files holding them (Kubernetes Secrets), or
#   $CREDENTIALS_DIRECTORY/rc_client_secret   systemd LoadCredential= (rc_jwt likewise).
"""


@dataclass(frozen=True)
class SettingDoc:
    """What the documentation says about one setting."""

    name: str
    env: str
    group: str
    description: str
    default: object  # the model's default, as a user would write it; None when there is none
    shown_default: str | None  # replaces the default where it depends on the machine
    example: object
    required: bool

    @property
    def secret(self) -> bool:
        return self.name in SECRET_FIELDS


def setting_docs() -> list[SettingDoc]:
    """Every setting, in documentation order (by group, then as declared in the model)."""
    docs = [_doc(name, info) for name, info in Settings.model_fields.items()]
    return sorted(docs, key=lambda doc: GROUPS.index(doc.group))


def _doc(name: str, info: FieldInfo) -> SettingDoc:
    extra = info.json_schema_extra
    if not isinstance(extra, dict) or extra.get("group") not in GROUPS or not info.description:
        raise ValueError(f"setting {name} has no description or group: declare it with settings.setting()")
    shown = extra.get("shown_default")
    description = info.description
    if name in DURATION_BOUNDS:  # each duration's ceiling, stated where it is documented
        description += f" At most {format_duration(DURATION_BOUNDS[name])}."
    return SettingDoc(
        name=name,
        env=ENV_NAMES[name],
        group=str(extra["group"]),
        description=description,
        default=None if info.default_factory is not None else info.default,
        shown_default=None if shown is None else str(shown),
        example=info.examples[0] if info.examples else None,
        required=extra.get("required") is True,
    )


# -- the reference page ---------------------------------------------------------------------------
def reference_block() -> str:
    """The text between the reference page's markers: the table, then the notes."""
    rows = [
        START_MARKER,
        f"<!-- generated from archiver/settings.py by `{COMMAND}`; do not edit by hand -->",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    group = ""
    for doc in setting_docs():
        if doc.group != group:
            group = doc.group
            rows.append(f"| **{_markdown(group)}** | | |")
        meaning = doc.description
        if doc.example is not None and not doc.required:
            meaning += f" Example: `{doc.example}`."
        rows.append(f"| `{doc.env}` | {_table_default(doc)} | {_markdown(meaning)} |")
    return "\n".join([*rows, "", REFERENCE_NOTES, END_MARKER])


def _table_default(doc: SettingDoc) -> str:
    if doc.shown_default is not None:
        return _markdown(doc.shown_default)
    if doc.default is None or doc.default == "":
        return ""
    return f"`{_toml_value(doc.default) if isinstance(doc.default, bool) else doc.default}`"


def _markdown(text: str) -> str:
    """Table-cell safe: '|' escaped everywhere; '<' and '>' outside `code` (they would read as HTML)."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # the even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def render_reference(current: str) -> str:
    """The reference page with the block between its markers regenerated."""
    return generated_docs.replace_block(current, START_MARKER, END_MARKER, reference_block(), REFERENCE)


# -- example TOML ---------------------------------------------------------------------------------
def example_toml() -> str:
    """Every setting but the secrets themselves, commented, grouped; required ones set to examples."""
    lines = [TOML_HEADER.rstrip("\n")]
    group = ""
    for doc in setting_docs():
        if doc.secret:
            continue  # refused in the file: shown as their *_FILE forms and in the header
        if doc.group != group:
            group = doc.group
            lines += ["", f"# --- {group} ".ljust(TOML_WIDTH, "-")]
        lines += _toml_comment(doc)
        lines.append(_toml_line(doc))
    return "\n".join(lines) + "\n"


def _toml_comment(doc: SettingDoc) -> list[str]:
    text = f"{doc.env}: {doc.description.replace('`', '')}"
    if doc.shown_default is not None and not doc.required:
        text += f" Default: {doc.shown_default}."
    elif doc.example is not None and doc.default not in (None, doc.example):
        text += f" Example: {_toml_value(doc.example)}."
    return textwrap.wrap(
        text, width=TOML_WIDTH - 2, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
    )


def _toml_line(doc: SettingDoc) -> str:
    if doc.required:
        return f"{doc.name} = {_toml_value(doc.example)}"
    shown = doc.default if doc.default is not None and doc.shown_default is None else doc.example
    if shown is None:
        raise ValueError(f"setting {doc.name} has neither a default nor an example to show")
    return f"# {doc.name} = {_toml_value(shown)}"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


# -- command --------------------------------------------------------------------------------------
def drifted(root: Path) -> list[str]:
    """The documentation files under root that differ from what the model generates."""
    stale = []
    reference = (root / REFERENCE).read_text(encoding="utf-8")
    if reference != render_reference(reference):
        stale.append(f"{REFERENCE}: the settings table is out of date")
    example = root / EXAMPLE
    if not example.exists() or example.read_text(encoding="utf-8") != example_toml():
        stale.append(f"{EXAMPLE}: out of date")
    return stale


def write(root: Path) -> None:
    reference = root / REFERENCE
    reference.write_text(render_reference(reference.read_text(encoding="utf-8")), encoding="utf-8")
    (root / EXAMPLE).write_text(example_toml(), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    return generated_docs.main(
        "archiver.settings_docs", "the settings' documentation, from the model", write, drifted, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
