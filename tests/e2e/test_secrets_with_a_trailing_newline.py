"""Secrets given as `*_env` whose value ends in a newline, as a Kubernetes Secret made from a file gives them.

`kubectl create secret generic slack --from-file=signing-secret` keeps the file's final newline, and
`env: valueFrom: secretKeyRef` hands it to the process as is. Defect: `*_file` values were stripped but
`*_env` values were not, so the same secret accepted from a file stopped `llmcost serve` from the
environment (`notifications.slack.signing_secret: must not contain control characters (U+000A …)`).
Now both forms are stripped, and what the secrets guard works: bot token, Slack clicks and PagerDuty
webhooks verified.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_notify_grouping import PD_SECRET, SIGNING_SECRET, delivered, running

pytestmark = pytest.mark.real_process


def test_acknowledgements_are_verified_with_secrets_from_the_environment_ending_in_a_newline(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCOST_TEST_SLACK_SIGNING", SIGNING_SECRET + "\n")
    monkeypatch.setenv("LLMCOST_TEST_PD_WEBHOOK", PD_SECRET + "\n")
    monkeypatch.setenv("LLMCOST_TEST_SLACK_TOKEN", "xoxb-test-token\n")
    slack = {"signing_secret": None, "signing_secret_env": "LLMCOST_TEST_SLACK_SIGNING"}
    slack |= {"token": None, "token_env": "LLMCOST_TEST_SLACK_TOKEN"}
    pagerduty = {"webhook_secret": None, "webhook_secret_env": "LLMCOST_TEST_PD_WEBHOOK"}
    with running(db_url, tmp_path, slack=slack, pagerduty=pagerduty) as stack:
        stack.post_usage([f"slack-{i}" for i in range(3)])
        stack.post_usage([f"pd-{i}" for i in range(3)])
        delivered(stack, 6)
        assert {c.headers.get("authorization") for c in stack.slack.calls("chat.postMessage")} == {
            "Bearer xoxb-test-token"
        }
        slack_group = stack.slack_posts()[0]  # the slack-* projects; the pd-* ones are acknowledged in PagerDuty
        button = next(b for b in slack_group["blocks"] if b["type"] == "actions")["elements"][0]
        clicked = stack.slack_click("llmcost_ack_digest", button["value"])
        assert clicked.status_code == 200, clicked.text
        incident = stack.pd.pages[-1]
        webhook = stack.pagerduty_webhook("incident.acknowledged", incident.dedup_key)
        assert webhook.status_code == 200, webhook.text
        delivered(stack, 6, "acknowledged")
