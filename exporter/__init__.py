"""llmcost exporter: ingest recorded LLM calls, price them, store them, expose Prometheus metrics."""

__version__ = "0.2.0"
