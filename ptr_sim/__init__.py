"""Meta-World as a data source and a test bench: recording setups, sources of known quality,
bags, the closed-loop evaluation harness and the benchmark (needs the ``sim`` extra)."""
