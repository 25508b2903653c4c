"""What an S3 failure means for a run: the one classification of boto3's errors, shared by the
destination (s3.py), its probe (s3_probe.py) and the S3-hosted state.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError

from archiver.errors import REFUSED_BY_DESTINATION, DestinationError, PermanentError, TransientError

# Codes that no retry will fix: the run stops with exit 4 and the fix in the log.
FATAL_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "404",
    "InvalidBucketName",
    "AccountProblem",
}
# Codes of a reachable server refusing what our settings ask for (an encryption, a storage class, a
# tag or a lock it does not support or may not use): no retry fixes them, the settings do.
SETTINGS_REFUSALS = {
    "NotImplemented",
    "InvalidStorageClass",
    "InvalidEncryptionAlgorithmError",
    "InvalidTag",
    "UnsupportedOperation",
}
# Refusals that may be about one object (its key, its body) rather than the settings: mid-run they fail
# that recording (charged, its reason recorded), so one bad object never stops every run at its turn;
# the start-up probe, whose object is ours, still reports them as the settings' refusal.
OBJECT_REFUSALS = {"InvalidArgument", "InvalidRequest"}
PROBE_PREFIX = "_rc-archiver-probe/"  # probe() writes, reads back and deletes one object here


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refusal(exc: ClientError) -> str:
    """`refused by the destination: CODE message`, the server's own words (cut short)."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    words = " ".join(str(part) for part in (error.get("Code") or status, error.get("Message", "")) if part)
    return f"{REFUSED_BY_DESTINATION}: {words[:200]}"


def s3_error(exc: Exception, doing: str, bucket: str, prefix: str, refusal_hint: str) -> Exception:
    """What an S3 failure means for the run: DestinationError (stops it: a missing bucket, no access,
    a setting the server refuses), PermanentError (fails one recording: a refusal about one object),
    or TransientError (a failing world for the breaker: no answer, throttling, 5xx)."""
    if isinstance(exc, NoCredentialsError):
        return DestinationError(
            "no AWS credentials found",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role",
        )
    if not isinstance(exc, ClientError):  # no answer: a timeout, a refused connection, a cut
        return TransientError(f"S3 did not answer while {doing}: {type(exc).__name__}")
    code = error_code(exc)
    if code in FATAL_CODES:
        what = {"NoSuchBucket": "does not exist", "404": "does not exist"}.get(
            code, f"refused access ({code})"
        )
        return DestinationError(
            f"bucket {bucket} {what} while {doing}",
            hint="create the bucket or fix RC_ARCHIVER_DESTINATION, and grant s3:PutObject, "
            "s3:GetObject, s3:ListBucket, s3:AbortMultipartUpload, and s3:DeleteObject on "
            f"{prefix}{PROBE_PREFIX}* to the archiver's credentials",
        )
    if code in SETTINGS_REFUSALS or code.startswith("KMS."):
        return DestinationError(f"{_refusal(exc)} while {doing}", hint=refusal_hint)
    if code in OBJECT_REFUSALS:
        return PermanentError(f"{_refusal(exc)} while {doing}")
    # Throttling and 5xx, after botocore's retries: maybe passing, so a failing world for the breaker.
    return TransientError(f"{_refusal(exc)} while {doing}")


def s3_unusable(exc: Exception, doing: str, bucket: str, prefix: str, refusal_hint: str) -> DestinationError:
    """probe() answers usable or not: a failing world there is a DestinationError too; a server that
    answered (even 500) is reachable, and its refusal is named as such."""
    error = s3_error(exc, doing, bucket, prefix, refusal_hint)
    if isinstance(error, DestinationError):
        return error
    if isinstance(exc, ClientError):
        return DestinationError(f"S3 bucket {bucket}: {error}", hint=refusal_hint)
    return DestinationError(
        f"S3 bucket {bucket} is unreachable ({error})",
        hint="check AWS_ENDPOINT_URL, AWS_REGION and the network",
    )
