"""Where our token may go: pure rules about RingCentral URLs (table-tested in test_ringcentral_urls).

The token goes only to RingCentral's own hosts: the platform host, the hosts beside it
(media.ringcentral.com beside platform.ringcentral.com) and RingCentral's domains, over https (or the
platform's own scheme, the emulator's http). A nextPage link is followed only when it names the very
resource that was asked for (RingCentral's own 2021 example has one without /restapi/v1.0) with the
query that was asked for (same_query: parameters RingCentral adds unasked are accepted only where they
do not narrow the scan). Every real
link names the numeric account id where the request said `~` (docs/ringcentral-api.md#paging), so the
account segment matches `~` and any id (`~` and the account id name the same account).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

RINGCENTRAL_DOMAINS = ("ringcentral.com", "ringcentral.biz")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def _account_path(path: str) -> tuple[str, ...]:
    """The path's segments with the one after `account` (`~` or the numeric id) made one token."""
    segments = path.split("/")
    return tuple(
        "{account}"
        if i > 0 and segments[i - 1] == "account" and (segment == "~" or segment.isdigit())
        else segment
        for i, segment in enumerate(segments)
    )


def same_resource(candidate: str, asked: str) -> bool:
    """True when `candidate` has the scheme, host, port and path of `asked` (a nextPage we may follow),
    the account segment (`~` or the numeric account id) aside."""
    return _origin(candidate) == _origin(asked) and _account_path(urlsplit(candidate).path) == _account_path(
        urlsplit(asked).path
    )


# Parameters RingCentral adds to its links unasked (docs/ringcentral-api.md, U22), at values that do not
# narrow the scan: blocked calls carry no recording, and withRecording=false is the unfiltered default.
UNASKED_HARMLESS = {"showBlocked": None, "withRecording": "false"}
_INSTANTS = ("dateFrom", "dateTo")  # RingCentral re-renders them (`.000Z`): compared as instants


def same_query(candidate: str, asked: list[tuple[str, str]], page: int) -> bool:
    """True when the link `candidate` asks for what we asked, page `page`: every parameter of `asked`
    with the same value (times compared as instants), `page` the next one, and nothing else but
    UNASKED_HARMLESS ones. A link that narrowed the query (a recordingType, a different day) or
    skipped a page would silently shrink the scan."""
    theirs = parse_qs(urlsplit(candidate).query, keep_blank_values=True)
    ours = {**dict(asked), "page": str(page)}
    for name, value in ours.items():
        if theirs.get(name) is None or len(theirs[name]) != 1:
            return False
        if name in _INSTANTS:
            if _instant(theirs[name][0]) != _instant(value):
                return False
        elif theirs[name][0] != value:
            return False
    for name, values in theirs.items():
        if name in ours:
            continue
        if name not in UNASKED_HARMLESS or len(values) != 1:
            return False
        allowed = UNASKED_HARMLESS[name]
        if allowed is not None and values[0].lower() != allowed:
            return False
    return True


def _instant(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def ringcentral_host(url: str, platform_url: str) -> bool:
    """May our token be sent to `url`?"""
    scheme, host, _ = _origin(url)
    platform_scheme, platform_host, _ = _origin(platform_url)
    if not host or scheme not in ("https", platform_scheme):
        return False
    if host == platform_host:
        return True
    labels = platform_host.split(".")
    is_address = platform_host.replace(".", "").isdigit() or ":" in platform_host
    parent = ".".join(labels[1:]) if len(labels) >= 3 and not is_address else ""
    domains = (*RINGCENTRAL_DOMAINS, *((parent,) if parent else ()))
    return any(host == d or host.endswith("." + d) for d in domains)
