"""What the tests and the benchmarks share: synthetic images, machine facts, a Prometheus reader
and the local stack started through the supervisor's own plan. Neither tests/ nor benchmarks/
imports the other; both import this."""
