"""Synthetic, deterministic company call log and recording content for the emulator.

Everything is derived from a seed, so two emulators started with the same options serve the same
calls and byte-identical recordings, and a test can compute what a correct archiver must produce.
The shapes follow docs/ringcentral-api.md#records-legs-and-recordings: recordings on records AND
on legs (a transferred call's second recording is only on a leg), internal calls logged twice with
one recording, shortRecording records, calls without recordings, Automatic and OnDemand, mp3 and wav.
On request (DataOptions.leg_only_fraction) also records with no recording of their own whose transfer
leg has one.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from archiver.models import parse_time

ACCOUNT_ID = "400131227008"
CONTENT_BLOCK = 64 * 1024
AUDIO_HEADERS = {
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00",  # an ID3v2.4 tag header (empty tag)
    "audio/wav": b"RIFF\x00\x00\x00\x00WAVEfmt ",
}

# What a hostile (or merely unlucky) call log can hold: the archiver must keep all of these inside
# its destination root.
HOSTILE_STRINGS = (
    "../../../../etc/passwd",
    "..",
    "/absolute/path",
    "back\\slash\\..\\..\\windows",
    "ctrl\x00nul\x1b[31mred\x07bell\r\nnewline",
    "x" * 3000,
    "Zoë 名前 🎧 Ñandú",
    " . ",
    "%2e%2e%2f%2e%2e%2f",
    "CON",
)


@dataclass(frozen=True)
class Recording:
    id: str
    type: str  # Automatic | OnDemand
    content_type: str  # audio/mpeg | audio/wav
    size: int
    call_end: float  # epoch seconds the call ended; content is ready recording_delay after it
    duration: int


@dataclass(frozen=True)
class Party:
    phone_number: str
    name: str
    extension_id: str | None = None
    extension_number: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class Leg:
    leg_type: str
    action: str
    direction: str
    from_party: Party
    to_party: Party
    start: float
    duration: int
    master: bool
    recording: Recording | None


@dataclass(frozen=True)
class Call:
    id: str
    session_id: str
    telephony_session_id: str
    start: float
    duration: int
    type: str  # Voice | Fax
    direction: str
    action: str
    result: str
    from_party: Party
    to_party: Party
    extension_id: str
    recording: Recording | None
    short_recording: bool
    legs: tuple[Leg, ...]

    @property
    def end(self) -> float:
        return self.start + self.duration

    def recordings(self) -> list[Recording]:
        """Every distinct recording of this call, on the record or on any leg."""
        found: dict[str, Recording] = {}
        for rec in [self.recording, *(leg.recording for leg in self.legs)]:
            if rec is not None:
                found.setdefault(rec.id, rec)
        return list(found.values())


@dataclass
class DataOptions:
    seed: int = 7
    calls: int = 500
    days: float = 3.0
    anchor: float = 0.0  # epoch seconds of "now" at generation; calls lie in [anchor - days, anchor]
    bytes_per_second: int = 4000  # ~32 kbit/s mp3, as RingCentral serves
    fixed_size: int | None = None  # every recording exactly this many bytes (benchmarks)
    hostile_fraction: float = 0.0  # share of calls whose names/numbers are hostile strings
    transfer_fraction: float = 0.08
    internal_fraction: float = 0.06
    short_fraction: float = 0.05
    unrecorded_fraction: float = 0.12
    fax_fraction: float = 0.03
    # Transferred calls recorded only after the transfer: the record has no recording of its own, the
    # transfer leg has one. A top-level-only recordingType filter never returns them. None: none unless
    # the emulator takes that filter reading (then LEG_ONLY_WHEN_FILTERED), so default data stays as is.
    leg_only_fraction: float | None = None
    # Calls rung to a call queue and logged once more for every member the queue rang, each of those
    # records carrying the call's one recording (U23). None: none unless the emulator takes the
    # "fanout" reading (then QUEUE_WHEN_FANOUT).
    queue_fraction: float | None = None


LEG_ONLY_WHEN_FILTERED = 0.04
QUEUE_WHEN_FANOUT = 0.05
QUEUE_MEMBERS = (2, 4)  # how many members a queue call rings, at least and at most


FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Edsger", "Frances")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie")
CITIES = ("Belmont, CA", "Denver, CO", "Austin, TX", "Boston, MA", "Seattle, WA")


@dataclass
class CallLogData:
    """The generated account: calls sorted newest first, and an index of recordings by id."""

    options: DataOptions
    calls: list[Call]
    recordings: dict[str, Recording]
    calls_by_recording: dict[str, list[Call]]
    _sha_cache: dict[str, str] = field(default_factory=dict)
    _sha_lock: threading.Lock = field(default_factory=threading.Lock)

    def content_block(self, recording_id: str) -> bytes:
        """A recording's repeating block: seeded noise behind the header its type begins with (an
        ID3v2 tag for MP3, RIFF....WAVE for WAV), as a real file's first bytes are."""
        noise = random.Random(f"{self.options.seed}:content:{recording_id}").randbytes(CONTENT_BLOCK)
        recording = self.recordings.get(recording_id)
        header = AUDIO_HEADERS.get(recording.content_type, b"") if recording is not None else b""
        return header + noise[len(header) :]

    def iter_content(
        self, recording: Recording, start: int, end: int, chunk: int = CONTENT_BLOCK
    ) -> Iterator[bytes]:
        """Bytes [start, end) of a recording, in chunks, without ever holding the whole body."""
        block = self.content_block(recording.id)
        doubled = block + block  # lets any chunk of <= CONTENT_BLOCK bytes be one slice
        pos = start
        while pos < end:
            n = min(chunk, end - pos, CONTENT_BLOCK)
            offset = pos % CONTENT_BLOCK
            yield doubled[offset : offset + n]
            pos += n

    def sha256(self, recording: Recording) -> str:
        with self._sha_lock:
            cached = self._sha_cache.get(recording.id)
        if cached is None:
            digest = hashlib.sha256()
            for piece in self.iter_content(recording, 0, recording.size):
                digest.update(piece)
            cached = digest.hexdigest()
            with self._sha_lock:
                self._sha_cache[recording.id] = cached
        return cached


def _party(rng: random.Random, hostile: bool, *, extension: bool) -> Party:
    if hostile:
        return Party(
            phone_number=rng.choice(HOSTILE_STRINGS),
            name=rng.choice(HOSTILE_STRINGS),
            extension_id=str(rng.randint(10**8, 10**9)) if extension else None,
            extension_number=str(rng.randint(100, 999)) if extension else None,
        )
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    return Party(
        phone_number=f"+1{rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(1000, 9999)}",
        name=name,
        extension_id=str(rng.randint(10**8, 10**9)) if extension else None,
        extension_number=str(rng.randint(100, 999)) if extension else None,
        location=None if extension else rng.choice(CITIES),
    )


def _random_id(rng: random.Random, length: int = 14) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(length))


def _queue_members(rng: random.Random, call: Call, hostile: bool) -> list[Call]:
    """The records a call queue adds for a call: one per member it rang (the last one answered), each
    carrying the call's recording, as RingCentral logs queue calls for every member extension."""
    members = rng.randint(*QUEUE_MEMBERS)
    out = []
    for n in range(members):
        member = _party(rng, hostile, extension=True)
        answered = n == members - 1
        result = call.result if answered else "Missed"
        leg = Leg(
            "Accept",
            call.action,
            call.direction,
            call.from_party,
            member,
            call.start,
            call.duration,
            True,
            call.recording,
        )
        out.append(
            replace(
                call,
                id=_random_id(rng),
                to_party=member,
                extension_id=member.extension_id or "0",
                result=result,
                legs=(leg,),
            )
        )
    return out


def generate(options: DataOptions) -> CallLogData:
    rng = random.Random(options.seed)
    span = options.days * 86400.0
    calls: list[Call] = []
    next_recording = 1_000_000
    next_session = 5_000_000

    def new_recording(end: float, duration: int) -> Recording:
        nonlocal next_recording
        next_recording += rng.randint(1, 9)
        size = (
            options.fixed_size
            if options.fixed_size is not None
            else max(1, duration * options.bytes_per_second)
        )
        return Recording(
            id=f"{next_recording}008",
            type="Automatic" if rng.random() < 0.6 else "OnDemand",
            content_type="audio/mpeg" if rng.random() < 0.85 else "audio/wav",
            size=size,
            call_end=end,
            duration=duration,
        )

    for _ in range(options.calls):
        start = round(options.anchor - rng.random() * span, 3)
        duration = int(min(3600, 31 + rng.expovariate(1 / 150)))
        hostile = rng.random() < options.hostile_fraction
        direction = rng.choice(("Inbound", "Outbound"))
        internal_ext = _party(rng, hostile, extension=True)
        external = _party(rng, hostile, extension=False)
        from_party, to_party = (
            (external, internal_ext) if direction == "Inbound" else (internal_ext, external)
        )
        next_session += rng.randint(1, 50)
        kind = rng.random()
        call_type = "Voice"
        recording: Recording | None = None
        short = False
        legs: list[Leg] = []
        action = "Phone Call" if direction == "Inbound" else "VoIP Call"
        end = start + duration
        thresholds = [
            ("fax", options.fax_fraction),
            ("unrecorded", options.unrecorded_fraction),
            ("short", options.short_fraction),
            ("transfer", options.transfer_fraction),
            ("internal", options.internal_fraction),
            # Last, so that a share of 0 leaves every other draw, and so the data, as it was.
            ("leg-only", options.leg_only_fraction or 0.0),
            ("queue", options.queue_fraction or 0.0),
        ]
        chosen = "recorded"
        acc = 0.0
        for name, share in thresholds:
            acc += share
            if kind < acc:
                chosen = name
                break
        if chosen == "fax":
            call_type = "Fax"
            action = "Incoming Fax" if direction == "Inbound" else "Outgoing Fax"
        elif chosen == "short":
            short = True
            duration = rng.randint(3, 25)
            end = start + duration
        elif chosen not in ("unrecorded", "leg-only"):
            recording = new_recording(end, duration)
        legs.append(Leg("Accept", action, direction, from_party, to_party, start, duration, True, recording))
        if chosen in ("transfer", "leg-only"):
            # The second half of a transferred call has its own recording, present ONLY on its leg.
            target = _party(rng, hostile, extension=True)
            second = new_recording(end + 30, duration)
            legs.append(
                Leg(
                    "TransferCall",
                    "Transfer",
                    direction,
                    to_party,
                    target,
                    start + 5,
                    duration,
                    False,
                    second,
                )
            )
        telephony = f"s-{_random_id(rng, 32).lower()}"
        call = Call(
            id=_random_id(rng),
            session_id=str(next_session),
            telephony_session_id=telephony,
            start=start,
            duration=duration,
            type=call_type,
            direction=direction,
            action=action,
            result="Accepted" if direction == "Inbound" else "Call connected",
            from_party=from_party,
            to_party=to_party,
            extension_id=internal_ext.extension_id or "0",
            recording=recording,
            short_recording=short,
            legs=tuple(legs),
        )
        calls.append(call)
        if chosen == "queue" and recording is not None:
            calls.extend(_queue_members(rng, call, hostile))
        if chosen == "internal" and recording is not None:
            # An internal call is logged for both extensions: two records, one recording.
            other = _party(rng, hostile, extension=True)
            twin_dir = "Inbound" if direction == "Outbound" else "Outbound"
            twin_leg = Leg("Accept", action, twin_dir, from_party, other, start, duration, True, recording)
            calls.append(
                Call(
                    id=_random_id(rng),
                    session_id=call.session_id,
                    telephony_session_id=telephony,
                    start=start,
                    duration=duration,
                    type="Voice",
                    direction=twin_dir,
                    action=action,
                    result=call.result,
                    from_party=from_party,
                    to_party=other,
                    extension_id=other.extension_id or "0",
                    recording=recording,
                    short_recording=False,
                    legs=(twin_leg,),
                )
            )
    calls.sort(key=lambda c: (-c.start, c.id))
    recordings: dict[str, Recording] = {}
    by_recording: dict[str, list[Call]] = {}
    for call in calls:
        for rec in call.recordings():
            recordings[rec.id] = rec
            by_recording.setdefault(rec.id, []).append(call)
    return CallLogData(options, calls, recordings, by_recording)


def iso(ts: float) -> str:
    """RingCentral's timestamp format: UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 timestamp as RingCentral accepts it, as epoch seconds; naive times are UTC.

    No repair of a space: an unencoded '+' arrives as a space at RingCentral too, and the request
    fails there; the emulator must fail it the same way (docs/ringcentral-api.md#the-official-python-sdk).
    """
    return parse_time(value).timestamp()
