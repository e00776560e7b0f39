"""``make bench``: every benchmark, each a ratio against a baseline measured in the same run."""

from benchmarks import bench_agent, bench_reliability, bench_sandbox

bench_sandbox.main()
print()
bench_agent.main()
print()
bench_reliability.main()
