"""The archive's layout: where a recording goes, what its sidecar and manifest lines say, which
content types it keeps, and whether the destination already holds a recording. The one place that
knows the archive's shape; the destinations store bytes under keys and know nothing of it.

    <prefix>/<rendered RC_ARCHIVER_KEY_TEMPLATE>          the audio (object metadata: recording-id,
                                                          call-id, sha256)
    <prefix>/<the same key with .json for the extension>  its sidecar
    <prefix>/_manifests/<run-id>-<part>.jsonl             what each run archived, as a hash chain
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from archiver import __version__
from archiver.destinations.base import Destination, StoredObject
from archiver.keys import EXTENSIONS, extension_for, render_key, sidecar_key
from archiver.models import (
    ArchivedObject,
    Recording,
    format_time,
    placeholder_names,
    sidecar_fields,
    stored_name,
)
from archiver.ringcentral.calllog import parties_of

MANIFEST_PREFIX = "_manifests/"
META_RECORDING_ID, META_CALL_ID, META_SHA256 = "recording-id", "call-id", "sha256"
SIDECAR_CONTENT_TYPE = "application/json"
MANIFEST_CONTENT_TYPE = "application/x-ndjson"
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
_TYPE_OF_EXTENSION = {"mp3": "audio/mpeg", "wav": "audio/wav"}


@dataclass(frozen=True)
class Stored:
    """A recording the destination already holds intact, and whether its sidecar is still to write."""

    archived: ArchivedObject
    sidecar_missing: bool


def key_values(recording: Recording, ext: str) -> dict[str, object]:
    """The values of the key template's placeholders: the recording's own (models.Recording says which)
    and the extension; {start} is rendered from the local start time, not from this."""
    return {**{name: getattr(recording, name) for name in placeholder_names(type(recording))}, "ext": ext}


def _sidecar_values(recording: Recording) -> dict[str, object]:
    """The recording's fields the sidecar carries, under their stored names, as the state writes them."""
    return {
        stored_name(item): _json_value(getattr(recording, item.name))
        for item in sidecar_fields(type(recording))
    }


def _json_value(value: object) -> object:
    return format_time(value) if isinstance(value, datetime) else value


class Layout:
    def __init__(self, template: str, timezone: ZoneInfo) -> None:
        self.template = template
        self.timezone = timezone

    # -- keys ---------------------------------------------------------------------------------------
    def key_for(self, recording: Recording, content_type: str) -> str:
        return self._key(recording, extension_for(content_type))

    def _key(self, recording: Recording, ext: str) -> str:
        local_start = recording.start.astimezone(self.timezone)
        return render_key(self.template, key_values(recording, ext), local_start)

    def candidate_keys(self, recording: Recording) -> list[str]:
        """Where this recording may be stored: its extension is only known after the download (the
        template ends in `.{ext}`, settings make sure)."""
        return [self._key(recording, ext) for ext in sorted(EXTENSIONS, key=lambda e: (e == "bin", e))]

    sidecar_key = staticmethod(sidecar_key)

    # -- what is written ----------------------------------------------------------------------------
    @staticmethod
    def object_metadata(recording: Recording, sha256: str) -> dict[str, str]:
        return {
            META_RECORDING_ID: recording.recording_id,
            META_CALL_ID: recording.call_id,
            META_SHA256: sha256,
        }

    @staticmethod
    def sidecar(
        recording: Recording,
        source: tuple[Mapping[str, Any], Mapping[str, Any] | None],
        archived: ArchivedObject,
        archived_at: datetime,
    ) -> bytes:
        """The JSON written beside each recording: enough to understand it without RingCentral."""
        record, leg = source
        party_from, party_to = parties_of(record, leg)
        doc = {
            **_sidecar_values(recording),
            "content_type": archived.content_type,
            "size": archived.size,
            "sha256": archived.sha256,
            "key": archived.key,
            "from": party_from,
            "to": party_to,
            "archived_at": format_time(archived_at),
            "archiver_version": __version__,
            "call_log_record": record,
            "call_log_leg": leg,
        }
        return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode()

    @staticmethod
    def manifest_entry(
        event: str, recording_id: str, archived: ArchivedObject | None, **extra: Any
    ) -> dict[str, Any]:
        """One manifest line: `archived`, `found_stored` (already in the destination), `delete_intent`
        (a DELETE about to be sent) or `deleted` (at the source, with `by`). It names the object's key,
        size and sha256 (not its content type: the sidecar has it)."""
        return {
            "event": event,
            "recording_id": recording_id,
            "key": archived.key if archived else None,
            "size": archived.size if archived else None,
            "sha256": archived.sha256 if archived else None,
            **extra,
        }

    @staticmethod
    def manifest_key(run_id: str, part: int) -> str:
        return f"{MANIFEST_PREFIX}{run_id}-{part:05d}.jsonl"

    # -- is it already stored? ----------------------------------------------------------------------
    @staticmethod
    def read_sidecar(destination: Destination, key: str) -> dict[str, Any] | None:
        stored = destination.stat(key)
        if stored is None or stored.size > MAX_SIDECAR_BYTES:
            return None
        with destination.open(key) as stream:
            raw = stream.read(MAX_SIDECAR_BYTES)
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def find_stored(self, destination: Destination, recording: Recording) -> Stored | None:
        """Where the destination already holds this recording intact, by key, size and sha256.

        Accepted: a non-empty object of an audio type with a sidecar naming this recording with the
        object's size and sha256; or, when only the audio made it (a kill between the two writes), the
        object's own metadata naming this recording and its sha256: the sidecar is then still to be
        written. What is accepted is adopted, not proven: its bytes are re-proved against RingCentral
        before it may be deleted there (archive/deletion.py).
        """
        candidates = self.candidate_keys(recording)
        # One request for a new recording (S3: a LIST of the keys' stem), not a HEAD per extension;
        # only what is there is looked at further.
        present = destination.existing([*candidates, sidecar_key(candidates[0])])
        for key in candidates:
            stored = destination.stat(key) if key in present else None
            if stored is None:
                continue
            has_sidecar = sidecar_key(key) in present
            found = self._stored_as(destination, key, stored, recording.recording_id, has_sidecar)
            if found is not None:
                return found
        return None

    def _stored_as(
        self, destination: Destination, key: str, stored: StoredObject, recording_id: str, has_sidecar: bool
    ) -> Stored | None:
        if stored.size <= 0:
            return None  # no recording has 0 bytes: archive it again over this one
        meta_sha = stored.metadata.get(META_SHA256)
        fallback_type = stored.content_type or _TYPE_OF_EXTENSION.get(
            key.rsplit(".", 1)[-1], "application/octet-stream"
        )
        if not fallback_type.lower().startswith("audio/"):
            return None  # an HTML page or a body of no type stored by an older version: archive again
        sidecar = self.read_sidecar(destination, sidecar_key(key)) if has_sidecar else None
        if sidecar is not None:
            sha = sidecar.get("sha256")
            if (
                sidecar.get("recording_id") == recording_id
                and sidecar.get("size") == stored.size
                and isinstance(sha, str)
                and (meta_sha is None or meta_sha == sha)
            ):
                content_type = str(sidecar.get("content_type") or fallback_type)
                if not content_type.lower().startswith("audio/"):
                    return None
                return Stored(ArchivedObject(key, content_type, stored.size, sha), sidecar_missing=False)
            return None
        if meta_sha and stored.metadata.get(META_RECORDING_ID) == recording_id:
            return Stored(ArchivedObject(key, fallback_type, stored.size, meta_sha), sidecar_missing=True)
        return None
