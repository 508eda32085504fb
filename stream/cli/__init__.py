"""The `cleanfeed` command: run, launch, inspect, demo, bench."""
