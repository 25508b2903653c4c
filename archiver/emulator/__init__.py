"""A faithful RingCentral emulator: OAuth, company call log, recordings, rate limits and faults."""

from archiver.emulator.data import DataOptions
from archiver.emulator.faults import FAULT_KINDS, FaultOptions
from archiver.emulator.ratelimit import GroupLimit
from archiver.emulator.server import Emulator, EmulatorConfig

__all__ = ["FAULT_KINDS", "DataOptions", "Emulator", "EmulatorConfig", "FaultOptions", "GroupLimit"]
