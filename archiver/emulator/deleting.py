"""Deleting recordings: DELETE call-recordings, its readings (U10) and its per-test faults."""

from __future__ import annotations

import json

from archiver.emulator.gates import HandlerBase
from archiver.emulator.replies import BAD_JSON

MAX_DELETE_IDS = 100  # CallRecordingIds.records maxItems in the public spec


class DeleteRoutes(HandlerBase):
    def _delete_recordings(self, raw: bytes) -> None:
        """deleteCompanyCallRecordings: Heavy, app permission EditCallLog, 204 with no body.

        What a batch naming unknown or already deleted ids does is the `delete_unknown` reading (U10);
        `delete_fault` breaks every call on purpose (faults.DELETE_FAULTS). Only what is really deleted
        reaches Deletions and the stats, so both stay ground truth under every option."""
        route = "delete-recordings"
        fault = self.state.config.delete_fault
        if fault == "misroute":
            # A proxy sends the call somewhere that does not know the path: RingCentral never sees it,
            # so no token check, no Heavy request, nothing deleted; content stays served.
            self._error(route, 404, "CMN-102", "Resource for parameter [path] is not found")
            return
        gate = self._api_gate(route, "EditCallLog")
        if gate is None:
            return
        rate, _ = gate
        # From here RingCentral has the request and carries it out; under "lost" whatever it answers
        # never arrives (_send resets the connection instead).
        self._lose_reply = fault == "lost"
        try:
            document = json.loads(raw or b"null")
        except ValueError:
            self._reply(route, BAD_JSON, rate)
            return
        ids = document.get("records") if isinstance(document, dict) else None
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_DELETE_IDS
            or not all(isinstance(i, str) and i for i in ids)
        ):
            # The spec's CallRecordingIds: 1..100 string ids; past that, InvalidRequest (CMN-101).
            self._error(
                route,
                400,
                "CMN-101",
                "Parameter [records] value is invalid.",
                rate,
                parameterName="records",
                parameterValue=raw.decode(errors="replace")[:200],
            )
            return
        now = self.state.config.clock()
        deletions = self.state.deletions
        missing = [i for i in ids if not deletions.exists(i, now)]
        if missing and self.state.readings.delete_unknown == "refuse":
            # Reading B of U10: the whole call is refused, nothing deleted (an already deleted id is
            # "not found" too, so a retry after a lost 204 gets this 404). Under "ignore" the ids that
            # exist are deleted and the call answers 204.
            self._error(
                route,
                404,
                "CMN-102",
                "Resource for parameter [records] is not found",
                rate,
                parameterName="records",
                parameterValue=missing[0][:100],
            )
            return
        if fault == "partial":
            # Only the first half goes (at least one id); the reply says so per id, as a multi-status
            # reply would. An id in the first half that was already gone (possible under "ignore") is
            # reported 204 like the rest of that half: it is gone, which is what 204 promises.
            done = set(ids[: max(1, len(ids) // 2)])
            removed = deletions.delete([i for i in ids if i in done], now)
            self.state.stats.count_deleted(removed, now)
            records = [
                {"id": i, "status": 204}
                if i in done
                else {"id": i, "status": 500, "errorCode": "CMN-500", "message": "Recording was not deleted"}
                for i in ids
            ]
            self._send(route, 207, {"records": records}, rate)
            return
        removed = deletions.delete(ids, now)
        self.state.stats.count_deleted(removed, now)
        self._send(route, 204, None, rate)
