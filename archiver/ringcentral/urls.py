"""Where our token may go: pure rules about RingCentral URLs (table-tested in test_ringcentral_urls).

The token goes only to RingCentral's own hosts: the platform host, the hosts beside it
(media.ringcentral.com beside platform.ringcentral.com) and RingCentral's domains, over https (or the
platform's own scheme, the emulator's http). A nextPage link is followed only when it names the very
resource that was asked for: RingCentral's own 2021 example has one without /restapi/v1.0.
"""

from __future__ import annotations

from urllib.parse import urlsplit

RINGCENTRAL_DOMAINS = ("ringcentral.com", "ringcentral.biz")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def same_resource(candidate: str, asked: str) -> bool:
    """True when `candidate` has the scheme, host, port and path of `asked` (a nextPage we may follow)."""
    return _origin(candidate) == _origin(asked) and urlsplit(candidate).path == urlsplit(asked).path


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
