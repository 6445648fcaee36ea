"""Benchmarks: our server against the floor (a minimal MCPServer with one echo tool), side by side.

Run `python -m bench` (or `--quick`); the figures are printed, never asserted. Every figure is
compared with the floor measured in the same run, rounds interleaved, so the machine's load
affects both sides alike.
"""
