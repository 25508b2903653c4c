"""S3 multipart uploads done by hand, so that every upload id is journaled before its first part.

A kill (SIGKILL, a second signal, a stop timeout) can interrupt an upload at any point; its parts stay
stored and billed until someone aborts it. So the id is recorded right after CreateMultipartUpload,
before any part, and ended only once the upload is completed or aborted: whatever the journal still
lists after a crash is an upload to abort (S3Destination.recover). At most PARTS_IN_FLIGHT parts are
sent at once, whatever the file's size; parts of a file are views read with pread as they are sent,
so no part is held in memory. Each part carries its SHA-256, which S3 verifies.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from botocore.exceptions import ClientError

from archiver.destinations.base import UploadJournal

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
# Journaled before CreateMultipartUpload, whose id is known only once it answers: a kill between its
# answer and the journal would leave an upload nobody knows of. recover() lists the key's uploads.
INTENT_PREFIX = "intent:"


def is_intent(upload_id: str) -> bool:
    return upload_id.startswith(INTENT_PREFIX)


class UploadLedger:
    """The journal, plus the uploads this process has under way (a live upload is not a leftover)."""

    def __init__(self, journal: UploadJournal | None) -> None:
        self._journal = journal
        self._live: dict[str, tuple[str, datetime]] = {}  # upload id -> (key, started)
        self._lock = threading.Lock()

    def started(self, key: str, upload_id: str) -> None:
        with self._lock:
            self._live[upload_id] = (key, datetime.now(UTC))
        if self._journal is not None:
            self._journal.upload_started(key, upload_id)

    def ended(self, upload_id: str) -> None:
        if self._journal is not None:
            self._journal.upload_ended(upload_id)
        with self._lock:
            self._live.pop(upload_id, None)

    def is_live(self, upload_id: str) -> bool:
        with self._lock:
            return upload_id in self._live

    def leftovers(self, before: datetime) -> list[tuple[str, str]]:
        """(key, upload id) of every unended upload, but this process's own started at or after `before`."""
        with self._lock:
            live = dict(self._live)
        recorded = self._journal.unended_uploads() if self._journal is not None else []
        out = [(key, upload_id) for key, upload_id in recorded if upload_id not in live]
        out += [(key, upload_id) for upload_id, (key, started) in live.items() if started < before]
        return out


def upload_in_parts(
    client: S3Client,
    bucket: str,
    key: str,
    stream: BinaryIO,
    create_args: dict[str, Any],
    ledger: UploadLedger,
) -> None:
    """Journal the intent, create, journal the id, send the parts, complete; on any failure abort (and
    journal-end once aborted). A failed create keeps its intent: the upload may exist all the same."""
    intent = INTENT_PREFIX + uuid.uuid4().hex
    ledger.started(key, intent)
    upload_id = client.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", **create_args
    )["UploadId"]
    try:
        ledger.started(key, upload_id)
        ledger.ended(intent)
        parts = _send_parts(client, bucket, key, upload_id, stream)
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        try:
            abort_upload(client, bucket, key, upload_id)
        except Exception:  # noqa: S110 - S3 is failing: the journal keeps the id for recover() to abort
            pass
        else:
            ledger.ended(upload_id)
        raise
    ledger.ended(upload_id)


def uploads_of(client: S3Client, bucket: str, key: str) -> list[str]:
    """The ids of the multipart uploads under way for exactly `key`."""
    ids: list[str] = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
        ids += [u["UploadId"] for u in page.get("Uploads", []) if u.get("Key") == key and "UploadId" in u]
    return ids


def abort_upload(client: S3Client, bucket: str, key: str, upload_id: str) -> bool:
    """Abort an upload; False if it was already gone (completed, aborted, expired by a lifecycle rule)."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
            return False
        raise
    return True


def _send_parts(
    client: S3Client, bucket: str, key: str, upload_id: str, stream: BinaryIO
) -> list[CompletedPartTypeDef]:
    parts: list[CompletedPartTypeDef] = []
    pending: deque[Future[CompletedPartTypeDef]] = deque()
    # Leaving the pool waits for parts still being sent, so an abort never races a part in flight
    # (S3 may otherwise keep a part that finished after the abort).
    with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
        try:
            for number, body in enumerate(_parts(stream), start=1):
                if len(pending) == PARTS_IN_FLIGHT:
                    parts.append(pending.popleft().result())  # the next part only once one is sent
                pending.append(pool.submit(_send_part, client, bucket, key, upload_id, number, body))
            while pending:
                parts.append(pending.popleft().result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return parts


def _parts(stream: BinaryIO) -> Iterator[bytes | _FileSlice]:
    """The parts of the source: views of a real file (read with pread as they are sent, so memory
    holds no part at all), or bytes read from any other stream."""
    try:
        fd = stream.fileno()
        size = os.fstat(fd).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        while chunk := stream.read(PART_SIZE):
            yield chunk
        return
    for offset in range(0, size, PART_SIZE):
        yield _FileSlice(fd, offset, min(PART_SIZE, size - offset))


class _FileSlice(io.RawIOBase):
    """One part of a file, read with os.pread: parts in flight share a descriptor without seeking it."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        super().__init__()
        self._fd, self._offset, self._length, self._position = fd, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, min(self._length, base + position))
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        data = os.pread(self._fd, wanted, self._offset + self._position)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def sha256(self) -> bytes:
        digest = hashlib.sha256()
        for start in range(0, self._length, 1024 * 1024):
            digest.update(os.pread(self._fd, min(1024 * 1024, self._length - start), self._offset + start))
        return digest.digest()


def _send_part(
    client: S3Client, bucket: str, key: str, upload_id: str, number: int, body: bytes | _FileSlice
) -> CompletedPartTypeDef:
    digest = body.sha256() if isinstance(body, _FileSlice) else hashlib.sha256(body).digest()
    checksum = base64.b64encode(digest).decode()
    response = client.upload_part(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=number,
        Body=body if isinstance(body, bytes) else cast(IO[bytes], body),  # a file-like part
        ChecksumSHA256=checksum,
    )
    return {"ETag": response["ETag"], "PartNumber": number, "ChecksumSHA256": checksum}
