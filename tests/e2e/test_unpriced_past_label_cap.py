"""`llm_unpriced_requests_total` names the unpriced model even when the usage labels are past their cap.

Defect: `metrics.max_series_per_label` folds the lowest-cost values of every label into `__other__`, and
an unpriced model costs 0, so past the cap it was the first to fold: the scrape said
`llm_unpriced_requests_total{provider="acme",model="__other__"}`, and `LLMCostUnpricedModel` asked for a
price for `acme/__other__`. The unpriced counter now names its models as stored, under a cap of its own
(the same number); the other usage families fold as before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.helpers import total
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

CAP = 3
PRICED = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"]
UNPRICED_LINE = re.compile(r'^llm_unpriced_requests_total\{model="([^"]*)",provider="([^"]*)"\} (\S+)$', re.M)


def call(rid: str, provider: str, model: str, tokens: int) -> dict[str, Any]:
    return {"request_id": rid, "provider": provider, "model": model, "input_tokens": tokens, "output_tokens": 10}


def unpriced(text: str) -> dict[tuple[str, str], float]:
    return {(provider, model): float(value) for model, provider, value in UNPRICED_LINE.findall(text)}


def serve(tmp_path: Path) -> LlmcostProcess:
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"metrics": {"max_series_per_label": CAP}}))
    return LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config).start(tmp_path)


def test_past_the_model_cap_the_unpriced_model_keeps_its_name(tmp_path: Path) -> None:
    server = serve(tmp_path)
    try:
        calls = [call(f"p{i}", "openai", model, 1000 * (i + 1)) for i, model in enumerate(PRICED)]
        calls += [call("u1", "acme", "acme-large-2", 500), call("u2", "acme", "acme-large-2", 500)]
        assert httpx.post(f"{server.base}/v1/usage", json=calls, timeout=20).json()["accepted"] == 6
        text = httpx.get(f"{server.base}/metrics", timeout=20).text
        assert total(text, "llm_requests_total", model="__other__") > 0  # the models are past the cap
        assert unpriced(text) == {("acme", "acme-large-2"): 2.0}
    finally:
        server.stop()


def test_past_their_own_cap_the_unpriced_models_with_most_calls_keep_their_names(tmp_path: Path) -> None:
    server = serve(tmp_path)
    try:
        # Five unpriced models, with 5, 4, 3, 2 and 1 calls: two keep their names, three share `__other__`.
        calls = [call(f"u{n}-{i}", "acme", f"acme-{n}", 100) for n in range(1, 6) for i in range(n)]
        assert httpx.post(f"{server.base}/v1/usage", json=calls, timeout=20).json()["accepted"] == 15
        text = httpx.get(f"{server.base}/metrics", timeout=20).text
        assert unpriced(text) == {("acme", "acme-5"): 5.0, ("acme", "acme-4"): 4.0, ("__other__", "__other__"): 6.0}
    finally:
        server.stop()
