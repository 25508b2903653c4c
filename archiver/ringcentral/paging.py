"""The call log, page by page: the half of RingCentralClient that walks a day's pages.

A day's call log may span many pages; RingCentral links the next one (`navigation.nextPage`), and that
link is followed only when it names the resource and query asked for, else the page is built from the
original query (urls.py). The spec serves at most MAX_PAGES pages. What a page holds is calllog.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import structlog

from archiver.errors import PermanentError, TransientError
from archiver.models import format_time
from archiver.ringcentral.calllog import CallLogPage, next_page_uri, recordings_in
from archiver.ringcentral.urls import same_query, same_resource

log = structlog.get_logger(__name__)
PER_PAGE = 1000
MAX_PAGES = 1000  # the spec's maximum page number (EnumeratedPagingModel.page)
CALL_LOG_PATH = "/restapi/v1.0/account/~/call-log"


def _page_url(
    next_uri: str, url: str, base: str, params: list[tuple[str, str]], number: int, what: str
) -> str:
    """Page `number` of the scan: RingCentral's link when it names the resource and query asked for,
    else built from the original query."""
    if number > MAX_PAGES:
        # The spec's paging.page is at most 1000: past it RingCentral refuses `page` or serves its last
        # page again (U24), so never ask. Not an outage: the day is reported unreadable.
        raise PermanentError(
            f"the call log for {what} has more than {MAX_PAGES} pages of {PER_PAGE} calls, "
            "more than RingCentral serves"
        )
    if same_resource(next_uri, url) and same_query(next_uri, params, number):
        return next_uri
    log.info("next_page_rebuilt", what=what, page=number, reason="nextPage names another resource or query")
    return f"{base}?{urlencode([*params, ('page', str(number))])}"


class CallLogPaging:
    """Call-log paging for RingCentralClient, which provides the server URL and the one retried GET
    of a JSON page (its `_get_json`)."""

    _server_url: str

    def _get_json(self, kind: str, url: str, what: str) -> dict[str, Any]:
        raise NotImplementedError  # RingCentralClient's: through the channel, retried

    def call_log_pages(
        self,
        date_from: datetime,
        date_to: datetime,
        what: str | None = None,
        *,
        recording_type: str | None = None,
    ) -> Iterator[CallLogPage]:
        """Pages of the company call log for [date_from, date_to): Detailed view, every call.

        No `recordingType` filter by default: whether RingCentral's filter sees recordings that exist
        only on a leg is unverified (docs/ringcentral-api.md#records-legs-and-recordings), so the scan
        reads every call and calllog.recordings_in picks the recordings from records and legs. The cost: about
        one Heavy request per 1,000 calls (perPage=1000), recorded or not. `recording_type` is for
        `check`, which compares the two readings.

        nextPage is followed only when it names the resource asked for (scheme, host, port, path) with
        the query asked for (urls.same_query); otherwise page N+1 is built from the original query.
        The pages stop at an empty page.
        """
        what = what or f"call-log {date_from:%Y-%m-%d}"
        params = [
            ("dateFrom", format_time(date_from)),
            ("dateTo", format_time(date_to)),
            ("view", "Detailed"),
            *((("recordingType", recording_type),) if recording_type else ()),
            ("perPage", str(PER_PAGE)),
        ]
        base = f"{self._server_url}{CALL_LOG_PATH}"
        url = f"{base}?{urlencode(params)}"
        seen: set[str] = set()
        number = 1
        while True:
            if url in seen:
                raise TransientError(f"the call log's nextPage for {what} points back at a page already read")
            seen.add(url)
            page = self._get_json("call-log", url, what)
            records = page.get("records")
            if not isinstance(records, list):
                raise TransientError(f"a call-log page for {what} without a records list")
            found = [ref for record in records if isinstance(record, dict) for ref in recordings_in(record)]
            yield CallLogPage(len(records), found)
            next_uri = next_page_uri(page)
            if next_uri is None or not records:
                return
            number += 1
            url = _page_url(next_uri, url, base, params, number, what)
