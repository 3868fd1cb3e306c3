"""Prometheus's HTTP API as the stack uses it: instant queries, samples printed, waiting on a condition."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx


def instant_query(prometheus: str, expr: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The result of an instant vector query (raises on an API error)."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=timeout)
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body.get('error', response.text)}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])


def format_sample(sample: Mapping[str, Any]) -> str:
    """One sample as `{label="value", ...} => 1.23456` (name first when there is one)."""
    labels = dict(sample["metric"])
    name = labels.pop("__name__", "")
    inner = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    value = float(sample["value"][1])
    return f"{name}{{{inner}}} => {value:.6g}"


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def scraped(prometheus: str, job: str) -> bool:
    """True once Prometheus has scraped `job` successfully."""
    return any(float(s["value"][1]) == 1 for s in instant_query(prometheus, f'up{{job="{job}"}}'))
