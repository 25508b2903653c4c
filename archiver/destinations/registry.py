"""Destinations by URL scheme: the one registry the settings validator, the factory and the capability
checks ask. Looking to add a destination (Azure, SFTP, ...)? Start here.

A backend is one module that builds a `Destination` (destinations/base.py) and registers a `Backend`
for its scheme when imported, as the built-ins do at the end of `local.py` and `s3.py` (imported by
this package's `__init__`, the one line a new built-in adds)::

    BACKEND = register(Backend(
        scheme="mem",
        url_problem=lambda url: None if url.startswith("mem://") else "mem://name",
        from_settings=lambda settings, journal: MemoryDestination(settings.destination),
    ))

A backend outside this package is found through the entry-point group `rc_archiver.destinations`,
naming its Backend (or the module that registers it) in the distribution's pyproject.toml::

    [project.entry-points."rc_archiver.destinations"]
    mem = "my_package.memory:BACKEND"

`tests/integration/test_destination_plugins.py` installs a small in-memory destination that way and runs an
archive pass into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from archiver.errors import SettingsError

if TYPE_CHECKING:
    from archiver.destinations.base import Destination

ENTRY_POINT_GROUP = "rc_archiver.destinations"


@dataclass(frozen=True)
class Backend:
    scheme: str  # "s3" serves every s3:// URL
    # What is wrong with a URL of this scheme, as the settings error says it ("an S3 destination is
    # s3://bucket..."), or None when it is usable.
    url_problem: Callable[[str], str | None]
    # (settings, journal) -> the destination RC_ARCHIVER_DESTINATION names, with the options the
    # settings give this backend; `journal` (base.UploadJournal or None) records multipart uploads where
    # the backend has any (S3), so a kill leaves none billed. Typed loosely: the settings module asks
    # this registry to check URLs, so the registry cannot name the settings' type without a cycle.
    from_settings: Callable[[Any, Any], Destination]
    # Capabilities the pass and the commands ask instead of reading a backend's settings:
    # can it keep objects under a retention lock or legal hold (S3 Object Lock)? Deletion at the
    # source's proof and `rc-archiver hold` need it.
    proves_retention: bool = False


SCHEMES: dict[str, Backend] = {}
_entry_points_read: set[str] = set()  # holds ENTRY_POINT_GROUP once its entry points were loaded


def register(backend: Backend) -> Backend:
    """Make `backend` the one for its scheme (a plugin may replace a built-in on purpose)."""
    SCHEMES[backend.scheme] = backend
    return backend


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def backend_for(url: str) -> Backend:
    """The backend for the URL's scheme; SettingsError naming RC_ARCHIVER_DESTINATION otherwise."""
    _load_plugins()
    backend = SCHEMES.get(scheme_of(url))
    if backend is None:
        known = ", ".join(f"{scheme}://" for scheme in sorted(SCHEMES))
        raise SettingsError(
            f"RC_ARCHIVER_DESTINATION: unsupported scheme in {url[:80]!r}", hint=f"use one of {known}"
        )
    return backend


def url_problem(url: str) -> str | None:
    """What is wrong with a destination URL (an unknown scheme included), or None."""
    try:
        return backend_for(url).url_problem(url)
    except SettingsError as exc:
        return f"{exc.args[0].split(': ', 1)[-1]}; {exc.hint}"


def _load_plugins() -> None:
    """Once, every installed entry point. The built-ins registered themselves already: importing this
    module imports its package, whose __init__ imports them (as a Go main imports its backends)."""
    if ENTRY_POINT_GROUP in _entry_points_read:
        return
    _entry_points_read.add(ENTRY_POINT_GROUP)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if isinstance(loaded, Backend):
            register(loaded)


def reload_plugins() -> None:
    """Look for entry points again (a test that installs one after the first lookup)."""
    _entry_points_read.discard(ENTRY_POINT_GROUP)
    _load_plugins()
