"""An evidence bundle's shape, and `rc-archiver verify --bundle`: re-check one offline.

    README.txt            what the bundle is and how to check it (by hand or with this command)
    MANIFEST.json         every other file with its size and sha256, the query, and each recording's files
    SHA256SUMS            the same hashes for `sha256sum -c SHA256SUMS`
    CHAIN.json            the manifest-chain entries that listed each recording when it was archived
    recordings/<key>      each recording's audio and its .json sidecar, under their archive keys

verify needs no RingCentral, no state and no network: exit 0 when every file MANIFEST.json names is
present with its size and sha256 and nothing else is there, and each recording's audio hashes to what
its sidecar and its chain entry say; exit 1 naming every altered, missing or extra file. A bundle may be
a folder or the one zip `export --zip` writes.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from archiver.errors import SettingsError

MANIFEST, SUMS, CHAIN, README = "MANIFEST.json", "SHA256SUMS", "CHAIN.json", "README.txt"
RECORDINGS = "recordings/"
UNLISTED = {MANIFEST, SUMS}  # the lists themselves


def sha256_of(stream: BinaryIO) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class BundleReader:
    """The files of a bundle, from a folder or a zip, by their bundle paths."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.is_file() and zipfile.is_zipfile(path) else None
        if self._zip is None and not path.is_dir():
            raise SettingsError(f"verify --bundle: {path} is neither a bundle folder nor a zip")

    def names(self) -> Iterator[str]:
        if self._zip is not None:
            yield from (n for n in self._zip.namelist() if not n.endswith("/"))
            return
        for file in sorted(self.path.rglob("*")):
            if file.is_file() or file.is_symlink():
                yield file.relative_to(self.path).as_posix()

    def open(self, name: str) -> BinaryIO:
        if self._zip is not None:
            return self._zip.open(name)  # type: ignore[return-value]
        return (self.path / name).open("rb")

    def exists(self, name: str) -> bool:
        if self._zip is not None:
            return name in self._zip.namelist()
        return (self.path / name).is_file()

    def json(self, name: str) -> Any:
        with self.open(name) as stream:
            return json.loads(stream.read())

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@dataclass
class BundleCheck:
    files: int = 0
    problems: list[str] = field(default_factory=list)  # one line each: what is wrong with which file

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(path: Path) -> BundleCheck:
    reader = BundleReader(path)
    try:
        return _check(reader)
    finally:
        reader.close()


def _check(reader: BundleReader) -> BundleCheck:
    result = BundleCheck()
    if not reader.exists(MANIFEST):
        result.problems.append(f"missing  {MANIFEST}: without it nothing can be checked")
        return result
    try:
        manifest = reader.json(MANIFEST)
        listed = {str(f["path"]): (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        result.problems.append(f"altered  {MANIFEST}: not the manifest export wrote")
        return result
    present = set(reader.names())
    hashes: dict[str, str] = {}
    for name, (size, sha256) in sorted(listed.items()):
        if name not in present:
            result.problems.append(f"missing  {name}")
            continue
        with reader.open(name) as stream:
            actual_size, actual_sha = sha256_of(stream)
        result.files += 1
        hashes[name] = actual_sha
        if (actual_size, actual_sha) != (size, sha256):
            result.problems.append(
                f"altered  {name}: size {actual_size}, sha256 {actual_sha}, listed {size}, {sha256}"
            )
    for name in sorted(present - set(listed) - UNLISTED):
        result.problems.append(f"extra    {name}: not in {MANIFEST}")
    result.problems += _cross_checks(reader, manifest, hashes)
    return result


def _cross_checks(reader: BundleReader, manifest: dict[str, Any], hashes: dict[str, str]) -> list[str]:
    """Each recording's audio must hash to what its sidecar and its chain entry say: MANIFEST.json
    rewritten to match an altered file still disagrees with those (and the chain with the archive)."""
    problems: list[str] = []
    chain: dict[str, list[dict[str, Any]]] = {}
    for entry in (_json_or_none(reader, CHAIN) or {}).get("entries", []) if CHAIN in hashes else []:
        chain.setdefault(str(entry.get("recording_id")), []).append(entry)
    for recording in manifest.get("recordings", []):
        audio, sidecar = str(recording.get("audio")), str(recording.get("sidecar"))
        actual = hashes.get(audio)
        if actual is None:
            continue  # already named missing
        document = _json_or_none(reader, sidecar) if sidecar in hashes else None
        if document is not None:  # a sidecar that is no JSON any more is named altered already
            said = document.get("sha256")
            if said != actual:
                problems.append(f"altered  {audio}: its sidecar {sidecar} says sha256 {said}")
        listed = {e.get("sha256") for e in chain.get(str(recording.get("recording_id")), [])}
        if listed and actual not in listed:
            problems.append(
                f"altered  {audio}: the manifest chain listed sha256 {', '.join(sorted(map(str, listed)))}"
            )
    return problems


def _json_or_none(reader: BundleReader, name: str) -> Any:
    """A JSON file of the bundle, or None when it is not JSON any more (already named altered)."""
    try:
        document = reader.json(name)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
