"""Store work refused at once, in a context that knows the database does not answer.

While PostgreSQL hangs (paused, partitioned), every query on a pooled connection waits until it answers
and every checkout with no idle connection waits `pool_timeout`, each holding a worker thread. Requests
answered 503 after their wait (exporter/http/bounded_requests.py) left those threads behind, one per
request: the thread pool ran out within seconds of budget checks, and ingest, which needs a thread to
parse, answered 503 three times later than its commit timeout. A request that starts once the store is
known silent runs with `STORE_KNOWN_SILENT` set: its checks (a token, a webhook's signature) answer as
usual, and its store work raises `StoreUnavailable` at once (`Store`), holding no thread.
"""

from __future__ import annotations

from contextvars import ContextVar

STORE_KNOWN_SILENT: ContextVar[bool] = ContextVar("llmcost_store_known_silent", default=False)
"""True in a request started while the store probe's ping had gone unanswered past its deadline."""
