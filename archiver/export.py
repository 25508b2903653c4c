"""`rc-archiver export [filters] --to DIR`: an evidence bundle of the matching recordings (bundle.py).

For each recording `find` would list with the same filters: its audio and sidecar copied byte for byte
from the archive (each re-hashed on the way, and refused if it no longer matches the recorded sha256),
the manifest-chain entries that listed it when it was archived (walked back from the chain's head the
state keeps), a MANIFEST.json and SHA256SUMS of every file, and README.txt. With --zip, one zip file.
The bundle holds personal data (numbers, names, voices): hand it only to who asked for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from archiver import __version__
from archiver.archive.manifest import HEAD
from archiver.bundle import CHAIN, MANIFEST, README, RECORDINGS, SUMS, sha256_of
from archiver.destinations.base import Destination
from archiver.errors import DestinationError, SettingsError
from archiver.keys import sidecar_key
from archiver.models import format_time
from archiver.state import RecordingRow, StateStore
from archiver.state.parties import Filters

log = structlog.get_logger(__name__)

README_TEXT = """\
Evidence bundle written by rc-archiver {version} on {created} UTC.

Query: {query}
Recordings: {count}

What is here
  recordings/<key>        each recording's audio, copied byte for byte from the archive, and its
                          .json sidecar (what RingCentral's call log said about the call)
  MANIFEST.json           every other file of the bundle with its size and sha256, and the query
  SHA256SUMS              the same hashes, for sha256sum
  CHAIN.json              for each recording, the archive manifest entries that listed it when it was
                          archived: run id, manifest key and that manifest part's sha256, and the
                          line itself (recording id, key, size, sha256)

How to check it
  1. Offline, with rc-archiver:      rc-archiver verify --bundle THIS_FOLDER_OR_ZIP
     (exit 0: intact; exit 1: each altered, missing or extra file is named)
  2. By hand, in this folder:        sha256sum -c SHA256SUMS
     and compare each audio file's sha256 with its sidecar's "sha256" and its entry in CHAIN.json.
  3. Against the archive: each CHAIN.json entry names a manifest part (manifest_key) and its sha256;
     the archive's manifests form a hash chain (rc-archiver verify --manifests proves it), so a part
     with that sha256 in the archive shows the recording was listed with this sha256 when archived.
     Record the sha256 of MANIFEST.json ({manifest_hint}) when you receive the bundle.
"""


@dataclass
class Exported:
    path: Path
    recordings: int
    files: int
    manifest_sha256: str


def chain_entries(
    destination: Destination, head: dict[str, str] | None, wanted: set[str], limit: int = 1_000_000
) -> list[dict[str, Any]]:
    """The manifest lines that listed the wanted recordings as archived (or found stored), newest
    first, with the part's run id, key and sha256: walked back from the head until each has one."""
    entries: list[dict[str, Any]] = []
    missing = set(wanted)
    expected, parts = head, 0
    while expected is not None and missing and parts < limit:
        key = expected["key"]
        if destination.stat(key) is None:
            log.warning("export_chain_break", key=key)
            break
        with destination.open(key) as stream:
            body = stream.read()
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = lines[0] if lines else {}
        parts += 1
        for line in lines[1:]:
            recording_id = str(line.get("recording_id"))
            if recording_id in wanted and line.get("event") in ("archived", "found_stored"):
                entries.append(
                    {
                        "recording_id": recording_id,
                        "run_id": header.get("run_id"),
                        "manifest_key": key,
                        "manifest_sha256": hashlib.sha256(body).hexdigest(),
                        "event": line.get("event"),
                        "key": line.get("key"),
                        "size": line.get("size"),
                        "sha256": line.get("sha256"),
                        "line": line,
                    }
                )
                missing.discard(recording_id)
        expected = header.get("previous")
    return entries


def _copy(destination: Destination, key: str, target: Path) -> tuple[int, str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with destination.open(key) as source, target.open("wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
    with target.open("rb") as written:
        return sha256_of(written)


def _write_recordings(
    destination: Destination, rows: Iterable[RecordingRow], folder: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    recordings, refused = [], []
    for row in rows:
        assert row.key is not None  # find lists archived recordings only
        audio, sidecar = f"{RECORDINGS}{row.key}", f"{RECORDINGS}{sidecar_key(row.key)}"
        size, sha = _copy(destination, row.key, folder / audio)
        if (size, sha) != (row.size, row.sha256):
            refused.append(f"{row.recording_id}: the archived object {row.key} no longer matches its sha256")
        _copy(destination, sidecar_key(row.key), folder / sidecar)
        recordings.append(
            {"recording_id": row.recording_id, "key": row.key, "audio": audio, "sidecar": sidecar}
        )
    return recordings, refused


def _files_of(folder: Path) -> list[dict[str, Any]]:
    files = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        with file.open("rb") as stream:
            size, sha = sha256_of(stream)
        files.append({"path": file.relative_to(folder).as_posix(), "size": size, "sha256": sha})
    return files


def export(
    state: StateStore, destination: Destination, filters: Filters, to: Path, *, as_zip: bool = False
) -> Exported:
    """The bundle of every recording `find` lists for `filters`, at `to` (a new folder, or zip file)."""
    try:
        return _export(state, destination, filters, to, as_zip)
    except OSError as exc:
        raise DestinationError(
            f"export: cannot write the bundle at {to}: {exc.strerror or exc}",
            hint="give a writable path with room for the recordings",
        ) from None


def _export(
    state: StateStore, destination: Destination, filters: Filters, to: Path, as_zip: bool
) -> Exported:
    if to.exists() and (as_zip or any(to.iterdir())):
        raise SettingsError(f"export --to {to}: it exists; give a new path", hint="export never overwrites")
    rows = list(state.find(filters))
    if not rows:
        raise SettingsError(
            "export: no archived recording matches the filters", hint="try `rc-archiver find`"
        )
    to.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=to.parent)) if as_zip else to
    work.mkdir(parents=True, exist_ok=True)
    try:
        recordings, refused = _write_recordings(destination, rows, work)
        if refused:
            raise DestinationError("export: " + "; ".join(refused), hint="run `rc-archiver verify --repair`")
        entries = chain_entries(destination, state.meta_json(HEAD), {r.recording_id for r in rows})
        (work / CHAIN).write_text(json.dumps({"entries": entries}, indent=2, sort_keys=True) + "\n")
        created = format_time(datetime.now(UTC))
        query = filters.as_dict()
        (work / README).write_text(
            README_TEXT.format(
                version=__version__,
                created=created,
                query=json.dumps(query, sort_keys=True),
                count=len(rows),
                manifest_hint="printed by export",
            )
        )
        files = _files_of(work)
        manifest = {
            "bundle": 1,
            "created_at": created,
            "archiver_version": __version__,
            "query": query,
            "recordings": recordings,
            "files": files,
        }
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        (work / MANIFEST).write_bytes(body)
        (work / SUMS).write_text("".join(f"{f['sha256']}  {f['path']}\n" for f in files))
        if as_zip:
            _zip(work, to)
    finally:
        if as_zip:
            shutil.rmtree(work, ignore_errors=True)
    return Exported(to, len(rows), len(files), hashlib.sha256(body).hexdigest())


def _zip(folder: Path, target: Path) -> None:
    """One zip, written beside the target and renamed into place (never a half zip under its name)."""
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(folder).as_posix())
    os.replace(partial, target)
