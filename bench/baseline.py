"""Another commit's code beside this checkout's: the commit's tree extracted with `git archive` (no
worktree, no change to the repository's state), for the archiver to run from with PYTHONPATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extract(rev: str, folder: Path) -> Path:
    """The tree of REV under FOLDER; returns its root (what PYTHONPATH names)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    if not (folder / "archiver" / "cli.py").exists():
        raise RuntimeError(f"{rev} has no archiver/cli.py: not a commit of this project")
    return folder


def subject(rev: str) -> str:
    """REV's commit subject, cut short."""
    line = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%s", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"{line[:70]}{'...' if len(line) > 70 else ''}"


def short_hash(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
