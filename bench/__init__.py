"""Throughput and latency benchmarks; results/ keeps measured runs."""
