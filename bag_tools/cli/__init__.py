"""``ptr`` subcommands that need no torch: inspect, ingest."""
