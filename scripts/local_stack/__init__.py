"""The parts of `make stack` (scripts/stack.py): llmcost, Prometheus and Alertmanager on loopback.

`configs` derives the three servers' configurations from the shipped files, `servers` starts and stops
them, `prometheus_api` queries Prometheus, `trace_feed` sends the bundled trace to llmcost, `assemble`
lays out one run's state folder and `guide` prints where to look and proves (`--check`) that it works.
"""
