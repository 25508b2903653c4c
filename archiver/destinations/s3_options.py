"""What every object the S3 destination writes carries: server-side encryption, storage class, tags
and Object Lock retention or legal hold (RC_ARCHIVER_S3_*), and the words a refusal of them gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode


@dataclass(frozen=True)
class StorageOptions:
    """Server-side encryption, storage class, tags and Object Lock retention for every object written."""

    sse: str = ""  # AES256 | aws:kms
    kms_key_id: str = ""
    storage_class: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    object_lock_mode: str = ""  # GOVERNANCE | COMPLIANCE
    object_lock_days: int = 0
    legal_hold: bool = False

    def extra_args(self, now: datetime) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.tags:
            args["Tagging"] = urlencode(self.tags)
        if self.object_lock_mode:
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = now + timedelta(days=self.object_lock_days)
        if self.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def probe_args(self) -> dict[str, Any]:
        """What a probe object is written with: encryption and tags, so a refused KMS key or tagging
        permission shows at once; no retention or legal hold (the probe must be deletable) and no storage
        class (an archive class could not be read back)."""
        return {
            name: value
            for name, value in self.extra_args(datetime.now(UTC)).items()
            if name in ("ServerSideEncryption", "SSEKMSKeyId", "Tagging")
        }

    @property
    def needs_object_lock(self) -> bool:
        return bool(self.object_lock_mode or self.legal_hold)

    def in_use(self) -> list[str]:
        """The settings behind these options that are set: what a refusing server may not support."""
        used = [
            ("RC_ARCHIVER_S3_SSE", self.sse),
            ("RC_ARCHIVER_S3_KMS_KEY_ID", self.kms_key_id),
            ("RC_ARCHIVER_S3_STORAGE_CLASS", self.storage_class),
            ("RC_ARCHIVER_S3_TAGS", ",".join(self.tags)),
            ("RC_ARCHIVER_S3_OBJECT_LOCK_MODE", self.object_lock_mode),
            ("RC_ARCHIVER_S3_LEGAL_HOLD", "true" if self.legal_hold else ""),
        ]
        return [f"{name}={value}" if name != "RC_ARCHIVER_S3_TAGS" else name for name, value in used if value]

    def refusal_hint(self) -> str:
        """The fix for a request a reachable server refused: the settings that asked for it."""
        used = self.in_use()
        if not used:
            return "the server answered and refused: see its log, and check AWS_ENDPOINT_URL and AWS_REGION"
        return (
            f"the server answered and refused a request made with {', '.join(used)}: check that it "
            "supports these options (S3-compatible stores often lack SSE-KMS, archive storage classes or "
            "Object Lock), or unset them"
        )
