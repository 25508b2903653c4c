"""The company call log: parameters, filters, paging (links, the page cap) and records as the API shows
them (readings U1, U5, U10, U22, U24)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from archiver.emulator.data import ACCOUNT_ID, Call, Leg, Party, iso, parse_iso
from archiver.emulator.gates import HandlerBase


class CallLogRoutes(HandlerBase):
    def _call_log(self, query: dict[str, list[str]]) -> None:
        route = "call-log"
        gate = self._api_gate(route, "ReadCallLog", knob=self.state.config.call_log_error)
        if gate is None:
            return
        rate, fault = gate
        now = self.state.config.clock()

        def bad(name: str) -> None:
            self._error(
                route,
                400,
                "CMN-101",
                f"Parameter [{name}] value is invalid",
                rate,
                parameterName=name,
                parameterValue=query.get(name, [""])[0][:200],
            )

        try:
            date_to = parse_iso(query["dateTo"][0]) if "dateTo" in query else now
        except ValueError:
            bad("dateTo")
            return
        try:
            date_from = parse_iso(query["dateFrom"][0]) if "dateFrom" in query else date_to - 86400
        except ValueError:
            bad("dateFrom")
            return
        view = query.get("view", ["Simple"])[0]
        if view not in ("Simple", "Detailed"):
            bad("view")
            return
        recording_type = query.get("recordingType", [""])[0]
        if query.get("withRecording", [""])[0].lower() == "true" and not recording_type:
            recording_type = "All"
        if recording_type not in ("", "All", "Automatic", "OnDemand"):
            bad("recordingType")
            return
        types = set(query.get("type", []))
        directions = set(query.get("direction", []))
        raw_per_page = query.get("perPage", ["100"])[0]
        if raw_per_page == "max":
            per_page = 1000
        else:
            try:
                per_page = int(raw_per_page)
            except ValueError:
                bad("perPage")
                return
            if per_page < 1:
                bad("perPage")
                return
            per_page = min(per_page, 1000)
        try:
            page = int(query.get("page", ["1"])[0])
        except ValueError:
            bad("page")
            return
        if page < 1:
            bad("page")
            return
        max_page = self.state.config.max_page
        if page > max_page:
            # The spec's paging.page is at most 1000 (EnumeratedPagingModel); U24: past it RingCentral
            # refuses the parameter, or serves its last page again as that page.
            if self.state.readings.page_cap == "refuse":
                bad("page")
                return
            page = max_page

        def wanted(call: Call) -> bool:
            if not (date_from <= call.start < date_to) or not self.state.visible(call, now):
                return False
            if types and call.type not in types:
                return False
            if directions and call.direction not in directions:
                return False
            if recording_type:
                # The filter sees what the record shows: under "dropped" (U10) a deleted recording
                # no longer makes its call match.
                if self.state.readings.filter_top_level_only:
                    # The other reading: the filter looks at the record's own recording only, so a
                    # recording that exists only on a leg is seen by unfiltered scans alone.
                    own = self.state.listed(call.recording, now)
                    kinds = {own.type} if own is not None else set()
                else:
                    kinds = {r.type for r in call.recordings() if self.state.listed(r, now) is not None}
                return bool(kinds) if recording_type == "All" else recording_type in kinds
            return True

        matching = [c for c in self.state.data.calls if wanted(c)]  # already newest first
        start = (page - 1) * per_page
        records = [self._record_json(c, view == "Detailed", now) for c in matching[start : start + per_page]]
        # "no-version": links without /restapi/v1.0, as in RingCentral's 2021 Detailed-view example;
        # following one reaches no route and answers 404.
        prefix = "" if self.state.readings.next_page_style == "no-version" else "/restapi/v1.0"
        base = f"{self.state.platform_url}{prefix}/account/{ACCOUNT_ID}/call-log"
        params: list[tuple[str, str]] = [
            (k, v) for k, values in query.items() if k not in ("page", "perPage") for v in values
        ]
        params += [("dateFrom", iso(date_from))] if "dateFrom" not in query else []
        params += [("dateTo", iso(date_to))] if "dateTo" not in query else []
        if self.state.readings.page_links == "extra":
            # U22 reading B: every link in RingCentral's own examples carries these two, asked or not.
            params += [
                (k, v) for k, v in (("showBlocked", "true"), ("withRecording", "false")) if k not in query
            ]

        def page_uri(n: int) -> dict[str, str]:
            return {"uri": f"{base}?{urlencode([*params, ('page', str(n)), ('perPage', str(per_page))])}"}

        navigation: dict[str, Any] = {"firstPage": page_uri(1)}
        if start + per_page < len(matching):
            navigation["nextPage"] = page_uri(page + 1)
        if page > 1:
            navigation["previousPage"] = page_uri(page - 1)
        paging: dict[str, Any] = {"page": page, "perPage": per_page}
        if records:
            paging["pageStart"] = start
            paging["pageEnd"] = start + len(records) - 1
        payload = {
            "uri": page_uri(page)["uri"],
            "records": records,
            "paging": paging,
            "navigation": navigation,
        }
        self._send(route, 200, payload, rate, fault)

    def _party_json(self, party: Party) -> dict[str, Any]:
        out: dict[str, Any] = {"phoneNumber": party.phone_number, "name": party.name}
        if party.extension_id:
            out["extensionId"] = party.extension_id
            out["extensionNumber"] = party.extension_number
        if party.location:
            out["location"] = party.location
        return out

    def _base_json(self, item: Call | Leg, call: Call) -> dict[str, Any]:
        account_uri = f"{self.state.platform_url}/restapi/v1.0/account/{ACCOUNT_ID}"
        out: dict[str, Any] = {
            "startTime": iso(item.start),
            "duration": item.duration,
            "durationMs": item.duration * 1000,
            "type": call.type,
            "direction": item.direction,
            "action": item.action,
            "result": call.result,
            "from": self._party_json(item.from_party),
            "to": self._party_json(item.to_party),
            "telephonySessionId": call.telephony_session_id,
            "extension": {
                "id": int(call.extension_id) if call.extension_id.isdigit() else 0,
                "uri": f"{account_uri}/extension/{call.extension_id}",
            },
        }
        return out

    def _record_json(self, call: Call, detailed: bool, now: float) -> dict[str, Any]:
        out = self._base_json(call, call)
        out.update(
            id=call.id,
            uri=f"{self.state.platform_url}/restapi/v1.0/account/{ACCOUNT_ID}/call-log/{call.id}",
            sessionId=call.session_id,
        )
        own = self.state.listed(call.recording, now)
        if own is not None:
            out["recording"] = self._recording_json(own)
        if call.short_recording:
            out["shortRecording"] = True
        if detailed:
            out["lastModifiedTime"] = iso(call.end + 20)
            out["transport"] = "PSTN"
            legs = []
            for leg in call.legs:
                leg_json = self._base_json(leg, call)
                leg_json["legType"] = leg.leg_type
                leg_json["master"] = leg.master
                on_leg = self.state.listed(leg.recording, now)
                if on_leg is not None:
                    leg_json["recording"] = self._recording_json(on_leg)
                legs.append(leg_json)
            out["legs"] = legs
        return out
