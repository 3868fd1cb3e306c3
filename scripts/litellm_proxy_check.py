"""The LiteLLM proxy run as docs/sending-data.md tells users to, checked end to end (a manual check, not in CI).

    python3 scripts/litellm_proxy_check.py [--venv /tmp/llmcost-proxy-venv] [--record FILE]

1. A throwaway venv (never the project's `.venv`) gets llmcost from this checkout and `litellm[proxy]==1.82.6`,
   exactly: 1.82.7, 1.82.8 and 1.107.0 were credential-stealing releases. An existing venv is reused.
2. A real `llmcost serve` (SQLite, an ingest and an admin token) and a real `litellm --config config.yaml`
   with the docs' two-line `llmcost_callback.py` beside the config, one model answering with LiteLLM's
   `mock_response` (no network), and a `custom_auth` module giving keys a project or only an alias (keys
   with a team need the proxy's database, which needs Prisma engines downloaded at run time).
3. Requests through the proxy: a call, a stream, a provider failure (after the proxy's own retries), a
   wrong key, an unknown model, a caller naming another project in its metadata, a call a hard budget
   refuses, a call made while llmcost is stopped (sent once llmcost is back), and a call answered right
   before the proxy is stopped with SIGTERM.
4. Checks against the store: each call recorded once, with the response's tokens, LiteLLM's cost, the
   key's project and the end user; nothing for the requests that reached no provider or were refused;
   no prompt or completion text anywhere in the store file. Exit status 1 when a check fails.

`--record FILE` also writes what the proxy handed its callbacks for four of the requests (the file
`tests/e2e/test_litellm_proxy_calls.py` replays). Ports are free loopback ports; everything it starts is
stopped at the end, and its files are in a temporary folder removed then (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LITELLM = "litellm[proxy]==1.82.6"  # exactly this version: see the docstring
INGEST = "ingest-token-proxy-check-0123456789"
ADMIN = "admin-token-proxy-check-0123456789"
MARKER = "SECRET-proxy-check"  # in every prompt and completion: never in the store

# The docs' module and config, word for word but for the model's mock answer and the custom_auth module.
CALLBACK = """\
# llmcost_callback.py
from llmcost.litellm import LlmcostLogger

handler = LlmcostLogger()  # $LLMCOST_URL, $LLMCOST_TOKEN, $LLMCOST_FAIL_MODE
"""
CONFIG = """\
# config.yaml
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_key: not-used, mock_response: "MARKER answer"}}
litellm_settings:
  callbacks: {callbacks}
  num_retries: 2
general_settings:
  custom_auth: custom_auth.user_api_key_auth
"""
CUSTOM_AUTH = """\
from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth

KEYS = {
    "sk-project": {"project_id": "proj-77", "key_alias": "proj-key"},
    "sk-alias-only": {"key_alias": "lonely-key"},
}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key not in KEYS:
        raise Exception("unknown key")
    return UserAPIKeyAuth(api_key=api_key, **KEYS[api_key])
"""
RECORDER = """\
import json
import os

from litellm.integrations.custom_logger import CustomLogger


class Recorder(CustomLogger):
    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs)

    def _write(self, kwargs):
        params = kwargs.get("litellm_params") or {}
        line = {"exception": type(kwargs.get("exception")).__name__,
                "litellm_params": {"metadata": params.get("metadata")},
                "standard_logging_object": kwargs.get("standard_logging_object")}
        with open(os.environ["RECORD_TO"], "a") as out:
            out.write(json.dumps(line, default=str) + "\\n")


handler = Recorder()
"""
RECORDED = ("wrong_key", "unknown_model", "provider_rate_limited", "success_with_request_project")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll until `condition()` is truthy; exit naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := condition():
                return value
        except Exception:  # noqa: S110 (not up yet)
            pass
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def make_venv(path: Path) -> Path:
    """The throwaway venv with llmcost from this checkout and the pinned proxy; prints install time and size."""
    python = path / "bin" / "python"
    if not python.exists():
        venv.create(path, with_pip=True)
        started = time.monotonic()
        subprocess.run(
            [python, "-m", "pip", "install", "-q", str(REPO), LITELLM], check=True, cwd=tempfile.gettempdir()
        )
        print(f"installed llmcost and {LITELLM} in {time.monotonic() - started:.0f} s")
    else:  # this checkout's llmcost, as it is now
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)],
            check=True,
            cwd=tempfile.gettempdir(),
        )
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"venv {path}: {len(installed.stdout.splitlines())} packages, {size / 1e6:.0f} MB")
    return path / "bin"


class Run:
    """The processes and the folder of one check."""

    def __init__(self, bin_dir: Path, root: Path, record: Path | None) -> None:
        self.bin, self.root, self.record = bin_dir, root, record
        self.llmcost_port, self.proxy_port = free_port(), free_port()
        self.llmcost_url = f"http://127.0.0.1:{self.llmcost_port}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        self.db = root / "llmcost.db"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.failures: list[str] = []

    def start_llmcost(self) -> None:
        """`llmcost serve` on its port with the two tokens; returns once it answers."""
        config = self.root / "llmcost.yml"
        config.write_text(json.dumps({"auth": {"ingest_tokens": [INGEST], "admin_tokens": [ADMIN]}}))
        argv = [self.bin / "llmcost", "serve", "--config", config, "--db", f"sqlite:///{self.db}"]
        with open(self.root / "llmcost.log", "ab") as log:
            self.procs["llmcost"] = subprocess.Popen(
                [*argv, "--listen", f"127.0.0.1:{self.llmcost_port}"], stdout=log, stderr=log
            )
        wait_for(lambda: self.get(f"{self.llmcost_url}/healthz").status_code == 200, "llmcost")

    def stop(self, name: str) -> None:
        """Stop one of the processes (SIGTERM) and wait for it."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.terminate()
            proc.wait(30)

    def start_proxy(self) -> None:
        """`litellm --config config.yaml`, the module beside the config; returns once it answers."""
        folder = self.root / "proxy"
        folder.mkdir()
        (folder / "llmcost_callback.py").write_text(CALLBACK)
        (folder / "custom_auth.py").write_text(CUSTOM_AUTH)
        callbacks = "llmcost_callback.handler"
        env = {**os.environ, "LLMCOST_URL": self.llmcost_url, "LLMCOST_TOKEN": INGEST}
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM's bundled prices, no fetch
        if self.record:
            (folder / "recorder.py").write_text(RECORDER)
            callbacks = "[llmcost_callback.handler, recorder.handler]"
            env["RECORD_TO"] = str(self.root / "recorded.jsonl")
        (folder / "config.yaml").write_text(CONFIG.format(callbacks=callbacks).replace("MARKER", MARKER))
        argv = [self.bin / "litellm", "--config", folder / "config.yaml", "--host", "127.0.0.1"]
        # Started from another folder: the proxy finds the callback module beside config.yaml, not in its cwd.
        with open(self.root / "proxy.log", "ab") as log:
            self.procs["proxy"] = subprocess.Popen(
                [*argv, "--port", str(self.proxy_port)], stdout=log, stderr=log, env=env, cwd=self.root
            )
        wait_for(lambda: self.get(f"{self.proxy_url}/health/liveliness").status_code == 200, "the proxy", 120)

    def get(self, url: str) -> Any:
        """GET with httpx (from the throwaway venv)."""
        import httpx

        return httpx.get(url, timeout=5)

    def chat(self, key: str, **body: Any) -> Any:
        """A chat completion through the proxy with `key`; `body` adds to or replaces the request's fields."""
        import httpx

        request = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"{MARKER} question"}], **body}
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(f"{self.proxy_url}/v1/chat/completions", json=request, headers=headers, timeout=60)

    def check(self, ok: bool, what: str) -> None:
        """Print one check's outcome and remember a failure."""
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            self.failures.append(what)

    def stored(self) -> dict[str, dict[str, Any]]:
        """Every event in llmcost's store by request id, with its labels."""
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT e.*, s.provider, s.model, s.project, s.service, s.user, s.status FROM usage_events e"
                " JOIN usage_series s ON s.id = e.series_id"
            ).fetchall()
        return {row["request_id"]: dict(row) for row in rows}

    def close(self) -> None:
        """Stop every process still running."""
        for name in list(self.procs):
            self.stop(name)


def scenario(run: Run) -> None:
    """The requests and the checks."""
    import httpx

    call = run.chat("sk-project", user="end-5")
    run.check(call.status_code == 200, f"a call through the proxy answers 200 (got {call.status_code})")
    stream = run.chat("sk-project", stream=True, stream_options={"include_usage": True})
    chunks = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: {")]
    if not chunks:
        sys.exit(f"the stream answered {stream.status_code}: {stream.text[:300]}")
    stream_id, stream_usage = chunks[-1]["id"], chunks[-1].get("usage")
    failed = run.chat("sk-project", mock_response="litellm.RateLimitError")
    run.check(failed.status_code == 429, f"a provider's 429 is answered 429 (got {failed.status_code})")
    wrong_key = run.chat("sk-wrong", model="a-model-of-the-callers-choosing")
    run.check(wrong_key.status_code in (400, 401), f"a wrong key is refused (got {wrong_key.status_code})")
    unknown = run.chat("sk-project", model="no-such-model")
    run.check(unknown.status_code == 400, f"an unknown model is refused (got {unknown.status_code})")
    evade = run.chat("sk-project", user="end-5", metadata={"project": "evade", "service": "chat"})
    alias_only = run.chat("sk-alias-only", metadata={"project": "research"})

    admin = {"Authorization": f"Bearer {ADMIN}"}
    budget = {"scope": "user", "key": "end-5", "period": "daily", "unit": "requests", "limit": 2, "mode": "hard"}
    assert httpx.put(f"{run.llmcost_url}/v1/budgets/end-5", json=budget, headers=admin).status_code == 200
    refused = run.chat("sk-project", user="end-5")
    run.check(
        refused.status_code == 400 and "end-5" in refused.text,
        f"a hard budget's refusal is a 400 with llmcost's reason (got {refused.status_code} {refused.text[:120]})",
    )

    expected = {call.json()["id"], stream_id, evade.json()["id"], alias_only.json()["id"]}
    wait_for(lambda: expected <= set(run.stored()), "the calls in llmcost's store", 30)
    run.stop("llmcost")  # a call made while llmcost is down reaches it once it is back
    during = run.chat("sk-alias-only")
    run.start_llmcost()
    expected.add(during.json()["id"])
    wait_for(lambda: expected <= set(run.stored()), "the call made while llmcost was down", 60)
    time.sleep(2)  # nothing more is to arrive: a second copy of any call would be a double count
    stored = run.stored()

    errors = [e for e in stored.values() if e["status"] == "error"]
    run.check(
        len(errors) == 1 and errors[0]["provider"] == "openai",
        f"one failed call, the provider's: {[(e['provider'], e['model']) for e in errors]}",
    )
    run.check(
        set(stored) == expected | {errors[0]["request_id"] if errors else ""},
        f"each call once, nothing else: {sorted(stored)}",
    )
    first = stored.get(call.json()["id"], {})
    usage = call.json()["usage"]
    run.check(
        (first.get("input_tokens"), first.get("output_tokens")) == (usage["prompt_tokens"], usage["completion_tokens"]),
        f"the call's tokens are the response's ({first.get('input_tokens')}, {first.get('output_tokens')})",
    )
    run.check(first.get("cost_source") == "supplied" and first.get("cost_nanousd", 0) > 0, "LiteLLM's cost is kept")
    labels = (first.get("provider"), first.get("model"), first.get("project"), first.get("user"))
    run.check(labels == ("openai", "gpt-4o", "proj-77", "end-5"), f"provider, model, key's project, end user: {labels}")
    streamed = stored.get(stream_id, {})
    run.check(
        stream_usage is not None and streamed.get("output_tokens") == stream_usage["completion_tokens"],
        f"the stream is recorded with its usage ({streamed.get('output_tokens')} vs {stream_usage})",
    )
    evaded = stored.get(evade.json()["id"], {})
    run.check(
        (evaded.get("project"), evaded.get("service")) == ("proj-77", "chat"),
        f"metadata names the service, not another project: {evaded.get('project')}",
    )
    run.check(
        stored.get(alias_only.json()["id"], {}).get("project") == "research", "a key without a project: the metadata's"
    )
    run.check(MARKER.encode() not in run.db.read_bytes(), "no prompt or completion text in the store")

    last = run.chat("sk-alias-only").json()["id"]  # then SIGTERM at once, as `docker stop` does
    run.stop("proxy")
    run.check(last in run.stored(), "a call answered right before the proxy's SIGTERM is recorded")


def write_recording(run: Run, target: Path) -> None:
    """The four requests' kwargs, by name, as tests/e2e/test_litellm_proxy_calls.py reads them."""
    lines = [json.loads(line) for line in (run.root / "recorded.jsonl").read_text().splitlines()]
    # In the order of `scenario`: call, stream, 429 (after the proxy's retries), wrong key, unknown model, evade.
    failures = [line for line in lines if line["standard_logging_object"]["status"] == "failure"]
    picked = {
        "provider_rate_limited": next(f for f in failures if f["exception"] == "RateLimitError"),
        "wrong_key": next(
            f
            for f in failures
            if not f["standard_logging_object"].get("custom_llm_provider")
            and f["exception"] != "ProxyModelNotFoundError"
        ),
        "unknown_model": next(f for f in failures if f["exception"] == "ProxyModelNotFoundError"),
        "success_with_request_project": next(
            line for line in lines if (line["litellm_params"]["metadata"] or {}).get("project") == "evade"
        ),
    }
    target.write_text(json.dumps({name: picked[name] for name in RECORDED}, indent=1, sort_keys=True) + "\n")
    print(f"recorded {', '.join(RECORDED)} in {target}")


def main() -> int:
    """Run the check; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "llmcost-proxy-venv")
    parser.add_argument("--record", type=Path, help="write what the proxy logged for four requests to this file")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, store, proxy files)")
    args = parser.parse_args()
    bin_dir = make_venv(args.venv)
    sys.path.insert(0, str(next((args.venv / "lib").glob("python3*/site-packages"))))  # httpx, from that venv
    root = Path(tempfile.mkdtemp(prefix="llmcost-proxy-check-"))
    run = Run(bin_dir, root, args.record)
    started = time.monotonic()
    try:
        run.start_llmcost()
        run.start_proxy()
        scenario(run)
        if args.record:
            write_recording(run, args.record)
    finally:
        run.close()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    outcome = "FAILED: " + "; ".join(run.failures) if run.failures else "all checks passed"
    print(f"{outcome} ({time.monotonic() - started:.0f} s)")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
