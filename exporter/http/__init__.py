"""The HTTP API (Starlette): ingest, metrics, health, and the routes other packages add."""
