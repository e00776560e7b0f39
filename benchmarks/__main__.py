"""``make bench``: every benchmark, each a ratio against a baseline measured in the same run."""

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

try:
    bench_sandbox.main()
    print()
    bench_agent.main()
    print()
    bench_throughput.main()
    print()
    bench_cost.main()
    print()
    bench_api.main()
    print()
    bench_evidence.main()
    print()
    bench_park.main()
    print()
    bench_reliability.main()
    print()
    # Last: it restarts the engine.
    bench_cold.main()
finally:
    # What the benchmarks registered would otherwise keep the engine busy (tests/namespaces.py).
    delete_namespaces()
