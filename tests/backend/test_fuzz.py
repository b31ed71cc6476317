"""Both codecs under generated hostile input: the short CI run (bench/fuzz.py runs
millions, and over sockets). Two drivers of one generator: a seeded sweep for volume
(about 100 000 inputs a second), and hypothesis, whose failures shrink to a small stream.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backend.fuzzing import FuzzTarget, run_case

COMMANDS_PER_CONNECTION = 10
SWEEP_CONNECTIONS = 25_000  # 250 000 inputs a protocol, a few seconds
SHRINKING_CONNECTIONS = 300

TARGET = FuzzTarget()


@pytest.mark.parametrize("protocol", ["ascii", "binary"])
def test_a_seeded_sweep_breaks_no_codec(protocol: str) -> None:
    rng = random.Random(0)  # this seed found the mg touch-into-the-past crash in 26 000
    for _ in range(SWEEP_CONNECTIONS):
        run_case(TARGET, protocol, rng, COMMANDS_PER_CONNECTION)


@pytest.mark.parametrize("protocol", ["ascii", "binary"])
def test_no_shrinkable_input_breaks_a_codec(protocol: str) -> None:
    @settings(
        max_examples=SHRINKING_CONNECTIONS,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.randoms(use_true_random=False))
    def one_connection(rng: random.Random) -> None:
        run_case(TARGET, protocol, rng, COMMANDS_PER_CONNECTION)

    one_connection()
