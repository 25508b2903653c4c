"""Where an S3-hosted state lives (s3://bucket/key), and the errors its lease and its two saved forms
report: one wording for every S3 failure of the state, whichever part met it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from archiver.errors import StateError

MISSING = ("NoSuchKey", "404", "NotFound")  # GET says NoSuchKey, HEAD only 404 / NotFound
CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")  # an If-Match / If-None-Match refused


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class StateLocation:
    url: str
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> StateLocation:
        parts = urlsplit(url)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket or not key or key.endswith("/"):
            raise StateError(f"RC_ARCHIVER_STATE_PATH {url!r} must name an object: s3://bucket/path/state.db")
        return cls(url, bucket, key)

    def error(self, exc: Exception, doing: str) -> StateError:
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return StateError(
            f"S3 state {self.url}: {code} while {doing}",
            hint="check the bucket in RC_ARCHIVER_STATE_PATH and that the credentials may get, put and "
            "delete objects there",
        )

    def changed_by_another_writer(self) -> StateError:
        return StateError(
            f"the state at {self.url} was changed by another writer since this run read it; not overwritten",
            hint="make sure only one archiver uses this state (the lease should ensure it); rerun",
        )
