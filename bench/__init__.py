"""mcstatbot benchmarks (`make bench`, `python -m bench`): speed, footprint, load taken off Minecraft servers.

Every figure is the median of several runs with its spread; targets are reported against, never asserted.
Results go to `bench/results/latest.json`, `bench/results/latest.png` and `docs/benchmarks.md`.
"""
