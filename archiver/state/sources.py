"""The raw call-log record each recording came from, kept compressed in a table of its own.

The record (with its leg) is read once, when the recording's sidecar is written, so it stays out of the
recordings row that every walk reads: `recording_sources` holds it as one BLOB per recording, compact
JSON deflated against a preset dictionary of the call log's own keys and values (bench/scale.py's
2.9 KB record with three legs becomes 195 B; plain zlib of the compact JSON gets 441 B, as one record
is too short to teach deflate its own keys). The first byte names the dictionary, so a later one can
be added without rewriting old rows. `state compact` (compaction.py) deletes the record of a recording
RingCentral no longer holds once its sidecar is written: the sidecar keeps it in the archive.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from typing import Any

# A typical detailed call-log record, compact: the strings deflate may copy instead of spelling out.
# Deflate reaches back 32 KB and codes nearer matches shorter, so the commonest strings come last.
# NEVER edit a released dictionary (the rows written with it would no longer inflate): add a new one
# under a new first byte and make it the one `pack` uses.
_DICTIONARY_1 = (
    '"billing":{"costIncluded":0.0,"costPurchased":0.0},"reason":"Accepted","reasonDescription":'
    '"The call connected to and was accepted by this number.","internalType":"LocalNumber",'
    '"shortRecording":true,"sipUuidInfo":"","transport":"VoIP","delegate":{"id":"","name":""},'
    '"message":{"id":"","type":"VoiceMail","uri":""},"partyId":"","lastModifiedTime":"2026-',
    '"action":"Phone Call","result":"Call connected","Missed","Voicemail","Outbound","Internal",'
    '"type":"OnDemand","Automatic","legType":"SipToPstnMetered","PstnToSip","Accept","FindMe",'
    '"FollowMe","Transfer","ServiceMinus2","ServiceMinusOne","master":true,"master":false,',
    '"location":"San Francisco, CA","name":"Main Number","extensionNumber":"101",'
    '"extension":{"id":0,"uri":"https://platform.ringcentral.com/restapi/v1.0/account/~/extension/'
    '"},"telephonySessionId":"s-a","sessionId":"","durationMs":0,',
    '"recording":{"id":"","uri":"https://platform.ringcentral.com/restapi/v1.0/account/~/recording/'
    '","type":"Automatic","contentUri":"https://media.ringcentral.com/restapi/v1.0/account/~/recording/'
    '/content"},"legs":[{"startTime":"2026-","duration":0,"type":"Voice","direction":"Inbound",'
    '"action":"Phone Call","result":"Accepted","from":{"phoneNumber":"+1","name":"","extensionId":"'
    '"},"to":{"phoneNumber":"+1","name":"","extensionId":"","location":""},',
    '{"record":{"uri":"https://platform.ringcentral.com/restapi/v1.0/account/~/call-log/","id":"",'
    '"sessionId":"","telephonySessionId":"s-","startTime":"2026-12-01T00:00:00.000Z","duration":0,'
    '"type":"Voice","direction":"Inbound","leg":null}',
)
_DICTIONARIES = {1: "".join(_DICTIONARY_1).encode()}
_CURRENT = 1


def pack(record: dict[str, Any], leg: dict[str, Any] | None) -> bytes:
    """The stored form of a record and its leg: the dictionary's number, then raw deflate."""
    text = json.dumps({"record": record, "leg": leg}, separators=(",", ":")).encode()
    # An 8 KB window (the dictionary and a record fit) and the default memLevel: setting up deflate's
    # default 32 KB window with a dictionary cost 300-500 us a record, this 50-120 us, same size.
    deflate = zlib.compressobj(9, zlib.DEFLATED, -13, 8, zdict=_DICTIONARIES[_CURRENT])
    return bytes([_CURRENT]) + deflate.compress(text) + deflate.flush()


def pack_json(source_json: str) -> bytes:
    """The stored form of a schema-6 row's `source_json` ({"record": ..., "leg": ...})."""
    source = json.loads(source_json)
    return pack(source.get("record") or {}, source.get("leg"))


def unpack(stored: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    inflate = zlib.decompressobj(-15, zdict=_DICTIONARIES[stored[0]])
    source = json.loads(inflate.decompress(stored[1:]) + inflate.flush())
    return source.get("record") or {}, source.get("leg")


def add_sources_table(db: sqlite3.Connection) -> None:
    """WITHOUT ROWID: the id is the key (no rowid, no second index); a packed record (a few hundred
    bytes) stays within its leaf page, only a very long multi-leg one overflows."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS recording_sources "
        "(recording_id TEXT PRIMARY KEY, source BLOB NOT NULL) WITHOUT ROWID"
    )


def note_source(
    db: sqlite3.Connection, recording_id: str, record: dict[str, Any], leg: dict[str, Any] | None
) -> None:
    db.execute(
        "INSERT OR REPLACE INTO recording_sources (recording_id, source) VALUES (?, ?)",
        (recording_id, pack(record, leg)),
    )


def source_of(db: sqlite3.Connection, recording_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The record and leg a recording came from; ({}, None) once compacted (its sidecar keeps them)."""
    row = db.execute(
        "SELECT source FROM recording_sources WHERE recording_id = ?", (recording_id,)
    ).fetchone()
    return unpack(row[0]) if row else ({}, None)
