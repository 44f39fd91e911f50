"""The ``ptr`` command: one module per subcommand, imported only when used.

This package is the application layer. Each subcommand module parses its arguments and calls the
library that owns the work: ``bag_tools`` (inspect, ingest), ``ptr_core`` (train, eval, weights),
``ptr_sim`` (record-sim, benchmark, demo). Nothing below this package imports it.
"""
