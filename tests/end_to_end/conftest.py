"""End-to-end tests: the archiver as real processes against the emulator over HTTP and a real S3 server.

Every test in this folder is a `pipeline` test: .ci/run runs them twice, under the emulator's default and
its pessimistic reading of each undocumented RingCentral behaviour (RC_EMULATOR_PESSIMISTIC=1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A hook in a folder's conftest still sees the whole session's items: mark only this folder's.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.pipeline)
