"""Benchmarks (see bench/bench.py): the emulator and real servers from tests/harness, the archiver as a
real process, scenarios in bench/scenarios/, one naive client in bench/naive.py."""
