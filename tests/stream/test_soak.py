"""A short soak (2,000 pages at a steady offered rate) through Kafka -> Faust -> chDB: every page exactly once.

The long one (100,000 pages, memory and lag over time) is `bench/soak_bench.py`; both run tests/support/soak.py.
"""

import pytest

from tests.support.soak import soak

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_steady_stream_is_stored_exactly_once_and_the_worker_catches_up(kafka, tmp_path):
    result = soak(2000, rate=150.0, partitions=3, workdir=tmp_path, sample_every=2.0, broker=kafka)
    assert result["store"] == {"rows": 2000, "urls": 2000}
    assert result["lag_end"] == 0 and result["samples"][-1]["stored"] == 2000
    # A generous bound (the machine is shared): it catches gross growth; the evidence of flat memory is the
    # 100,000-page bench (infra/README.md, "Soak").
    memory = result["memory_mb"]
    assert memory["end"] < memory["after_warmup"] + 400, memory
