"""``make bench``: every benchmark, each a ratio against a baseline measured in the same run."""

from collections.abc import Callable

from benchmarks import (
    bench_agent,
    bench_api,
    bench_cold,
    bench_cost,
    bench_evidence,
    bench_park,
    bench_reliability,
    bench_sandbox,
    bench_throughput,
)
from tests.namespaces import delete_namespaces

BENCHMARKS: list[Callable[[], None]] = [
    bench_sandbox.main,
    bench_agent.main,
    bench_throughput.main,
    bench_cost.main,
    bench_api.main,
    bench_evidence.main,
    bench_park.main,
    bench_reliability.main,
    bench_cold.main,  # last: it restarts the engine
]

for index, benchmark in enumerate(BENCHMARKS):
    try:
        benchmark()
    finally:
        # What a benchmark registered and left queued (the intake benchmark's
        # tickets have no worker) would keep the engine busy during the next
        # ones (tests/namespaces.py).
        delete_namespaces()
    if index < len(BENCHMARKS) - 1:
        print()
