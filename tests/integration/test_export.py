"""`rc-archiver export` writes an evidence bundle; `verify --bundle` re-checks it offline."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.emulator import DataOptions
from archiver.emulator.data import Call
from tests.helpers import ArchivedFolder as Archive
from tests.helpers import archived_folder, run_subprocess

DATA = DataOptions(seed=5, calls=40, days=3, bytes_per_second=40, transfer_fraction=0.3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    with archived_folder(tmp_path_factory.mktemp("export"), DATA) as archived:
        yield archived


def transferred(archive: Archive) -> Call:
    return next(c for c in archive.emulator.state.data.calls if len(c.recordings()) == 2)


Report = Callable[..., tuple[int, str]]


@pytest.fixture
def export(archive: Archive, report: Report) -> Callable[..., None]:
    """`rc-archiver export --call-id <a transferred call> --to PATH ...`, in-process."""

    def run(to: Path, *extra: str) -> None:
        code, out = report(
            archive.env, "export", "--call-id", transferred(archive).id, "--to", str(to), *extra
        )
        assert code == 0, out
        assert "exported 2 recording(s)" in out

    return run


@pytest.fixture
def verify(report: Report) -> Callable[[Path], tuple[int, str]]:
    """`rc-archiver verify --bundle PATH` with no settings at all, in-process."""
    return lambda bundle: report({}, "verify", "--bundle", str(bundle))


def test_export_writes_byte_identical_recordings_with_their_chain_entries(
    archive: Archive, tmp_path: Path, export: Callable[..., None], verify: Callable[[Path], tuple[int, str]]
) -> None:
    bundle = tmp_path / "case"
    export(bundle)
    call = transferred(archive)
    truth = {item["recordingId"]: item for item in archive.emulator.ground_truth()}
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert {r["recording_id"] for r in manifest["recordings"]} == {r.id for r in call.recordings()}
    for recording in manifest["recordings"]:
        audio = (bundle / recording["audio"]).read_bytes()
        assert audio == (archive.root / recording["key"]).read_bytes()
        assert hashlib.sha256(audio).hexdigest() == truth[recording["recording_id"]]["sha256"]
        assert (bundle / recording["sidecar"]).read_bytes() == (
            archive.root / recording["sidecar"].removeprefix("recordings/")
        ).read_bytes()
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert on_disk - listed == {"MANIFEST.json", "SHA256SUMS"}
    chain = json.loads((bundle / "CHAIN.json").read_text())["entries"]
    assert {e["recording_id"] for e in chain} == {r.id for r in call.recordings()}
    for entry in chain:
        part = (archive.root / entry["manifest_key"]).read_bytes()
        assert hashlib.sha256(part).hexdigest() == entry["manifest_sha256"]
        assert entry["sha256"] == truth[entry["recording_id"]]["sha256"]
        assert entry["run_id"] and entry["manifest_key"].startswith("_manifests/")
    assert "rc-archiver verify --bundle" in (bundle / "README.txt").read_text()
    code, out = verify(bundle)
    assert code == 0 and out.endswith("0 problem(s)\n"), out


def test_verify_bundle_names_every_altered_missing_and_extra_file(
    archive: Archive, tmp_path: Path, export: Callable[..., None], verify: Callable[[Path], tuple[int, str]]
) -> None:
    bundle = tmp_path / "case"
    export(bundle)
    code, out = verify(bundle)
    assert code == 0, out
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    first, second = manifest["recordings"]
    audio = bundle / first["audio"]
    audio.write_bytes(audio.read_bytes()[:-1] + b"\x00")  # one byte changed
    (bundle / second["sidecar"]).unlink()
    (bundle / "recordings" / "note.txt").write_text("added later")
    code, out = verify(bundle)
    assert code == 1
    assert f"altered  {first['audio']}" in out
    assert f"missing  {second['sidecar']}" in out
    assert "extra    recordings/note.txt" in out


def test_a_manifest_rewritten_to_match_an_altered_file_is_still_caught(
    archive: Archive, tmp_path: Path, export: Callable[..., None], verify: Callable[[Path], tuple[int, str]]
) -> None:
    bundle = tmp_path / "case"
    export(bundle)
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    target = manifest["recordings"][0]["audio"]
    (bundle / target).write_bytes(b"ID3 not the recording")
    for item in manifest["files"]:
        if item["path"] == target:
            item["size"] = len(b"ID3 not the recording")
            item["sha256"] = hashlib.sha256(b"ID3 not the recording").hexdigest()
    (bundle / "MANIFEST.json").write_text(json.dumps(manifest))
    code, out = verify(bundle)
    assert code == 1 and f"altered  {target}: its sidecar" in out and "manifest chain listed" in out


def test_export_zip_is_one_file_that_verifies(
    archive: Archive, tmp_path: Path, export: Callable[..., None], verify: Callable[[Path], tuple[int, str]]
) -> None:
    target = tmp_path / "case.zip"
    export(target, "--zip")
    assert zipfile.is_zipfile(target)
    assert [p.name for p in tmp_path.iterdir()] == ["case.zip"]  # nothing left beside it
    assert verify(target)[0] == 0
    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(target) as source, zipfile.ZipFile(altered, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            out.writestr(
                name, data + b"!" if name.endswith(".json") and name.startswith("recordings/") else data
            )
    code, out_text = verify(altered)
    assert code == 1 and out_text.count("altered  recordings/") == 2


def test_export_refuses_an_existing_folder_and_no_match(
    archive: Archive, tmp_path: Path, export: Callable[..., None], verify: Callable[[Path], tuple[int, str]]
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    done = run_subprocess(
        archive.env, "export", "--call-id", transferred(archive).id, "--to", str(tmp_path / "full")
    )
    assert done.returncode == 2
    done = run_subprocess(archive.env, "export", "--call-id", "no-such-call", "--to", str(tmp_path / "none"))
    assert done.returncode == 2 and "no archived recording matches" in done.stderr
    shutil.rmtree(tmp_path / "full")
