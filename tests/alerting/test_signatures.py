"""Webhook signature verification: Slack (v0, timestamped) and PagerDuty (v1, rotation-aware)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from alerting.signatures import (
    sign_pagerduty,
    sign_slack,
    verify_pagerduty_signature,
    verify_slack_signature,
)

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


def test_sign_slack_follows_the_documented_v0_basestring():
    # Computed independently: HMAC-SHA256(secret, "v0:{timestamp}:{body}"), hex, prefixed with "v0=".
    expected = hmac.new(SLACK_SECRET.encode(), b"v0:1531420618:token=abc&team_id=T1", hashlib.sha256)
    assert sign_slack(SLACK_SECRET, 1531420618, b"token=abc&team_id=T1") == "v0=" + expected.hexdigest()


def test_a_correctly_signed_slack_request_is_accepted():
    signature = sign_slack(SLACK_SECRET, NOW, BODY)
    assert verify_slack_signature(SLACK_SECRET, str(NOW), BODY, signature, now=NOW)


def test_slack_accepts_now_as_an_aware_datetime():
    signature = sign_slack(SLACK_SECRET, NOW, BODY)
    assert verify_slack_signature(SLACK_SECRET, str(NOW), BODY, signature, now=datetime.fromtimestamp(NOW, UTC))


def test_a_tampered_slack_body_is_rejected():
    signature = sign_slack(SLACK_SECRET, NOW, BODY)
    assert not verify_slack_signature(SLACK_SECRET, str(NOW), BODY + b"x", signature, now=NOW)


def test_a_slack_request_signed_with_another_secret_is_rejected():
    signature = sign_slack("another-secret", NOW, BODY)
    assert not verify_slack_signature(SLACK_SECRET, str(NOW), BODY, signature, now=NOW)


def test_a_slack_signature_replayed_with_another_timestamp_is_rejected():
    signature = sign_slack(SLACK_SECRET, NOW, BODY)
    assert not verify_slack_signature(SLACK_SECRET, str(NOW + 1), BODY, signature, now=NOW)


@pytest.mark.parametrize("age", [301, 3600, -301, -86400], ids=["stale", "an-hour-old", "future", "a-day-ahead"])
def test_slack_requests_outside_five_minutes_are_rejected(age):
    timestamp = NOW - age
    signature = sign_slack(SLACK_SECRET, timestamp, BODY)
    assert not verify_slack_signature(SLACK_SECRET, str(timestamp), BODY, signature, now=NOW)


@pytest.mark.parametrize("age", [300, -300, 0])
def test_slack_requests_at_the_edge_of_the_window_are_accepted(age):
    timestamp = NOW - age
    signature = sign_slack(SLACK_SECRET, timestamp, BODY)
    assert verify_slack_signature(SLACK_SECRET, str(timestamp), BODY, signature, now=NOW)


def test_slack_tolerance_is_configurable():
    timestamp = NOW - 100
    signature = sign_slack(SLACK_SECRET, timestamp, BODY)
    assert not verify_slack_signature(SLACK_SECRET, str(timestamp), BODY, signature, now=NOW, tolerance=60)


@pytest.mark.parametrize(
    "timestamp",
    ["abc", "", " ", "1700000000.5", "-1700000000", "1e9", "9" * 5000, "١٧٠٠٠٠٠٠٠٠", None],
    ids=["letters", "empty", "blank", "fraction", "negative", "exponent", "huge", "arabic-digits", "missing"],
)
def test_malformed_slack_timestamps_are_rejected_without_raising(timestamp):
    # Even a signature computed over the malformed value does not pass.
    signature = sign_slack(SLACK_SECRET, timestamp or "", BODY)
    assert not verify_slack_signature(SLACK_SECRET, timestamp, BODY, signature, now=NOW)


@pytest.mark.parametrize(
    "signature",
    ["", None, "v0=", "v1=" + "0" * 64, "v0=zz", "v0=é" + "0" * 63, "garbage"],
    ids=["empty", "missing", "no-digest", "wrong-version", "not-hex", "non-ascii", "garbage"],
)
def test_malformed_slack_signatures_are_rejected_without_raising(signature):
    assert not verify_slack_signature(SLACK_SECRET, str(NOW), BODY, signature, now=NOW)


def test_an_empty_slack_signing_secret_never_verifies():
    signature = sign_slack("", NOW, BODY)
    assert not verify_slack_signature("", str(NOW), BODY, signature, now=NOW)


PD_BODY = b'{"event":{"id":"01DEN1HNLBC1VITJ4V1PRTBCH9","event_type":"incident.acknowledged"}}'


def test_sign_pagerduty_is_hmac_sha256_of_the_raw_body():
    expected = hmac.new(b"whsec-one", PD_BODY, hashlib.sha256).hexdigest()
    assert sign_pagerduty("whsec-one", PD_BODY) == f"v1={expected}"


def test_a_correctly_signed_pagerduty_webhook_is_accepted():
    assert verify_pagerduty_signature(["whsec-one"], PD_BODY, sign_pagerduty("whsec-one", PD_BODY))


def test_a_tampered_pagerduty_body_is_rejected():
    header = sign_pagerduty("whsec-one", PD_BODY)
    assert not verify_pagerduty_signature(["whsec-one"], PD_BODY.replace(b"acknowledged", b"resolved"), header)


def test_a_pagerduty_webhook_signed_with_another_secret_is_rejected():
    assert not verify_pagerduty_signature(["whsec-one"], PD_BODY, sign_pagerduty("whsec-other", PD_BODY))


def test_during_pagerduty_rotation_any_of_several_signatures_matches():
    header = sign_pagerduty(["whsec-new", "whsec-old"], PD_BODY)
    assert header.count("v1=") == 2
    assert verify_pagerduty_signature(["whsec-old"], PD_BODY, header)
    assert verify_pagerduty_signature(["whsec-new"], PD_BODY, header)
    assert not verify_pagerduty_signature(["whsec-unrelated"], PD_BODY, header)


def test_pagerduty_secrets_can_rotate_on_our_side_too():
    header = sign_pagerduty("whsec-old", PD_BODY)
    assert verify_pagerduty_signature(["whsec-new", "whsec-old"], PD_BODY, header)


def test_pagerduty_header_with_spaces_and_uppercase_hex_is_accepted():
    digest = hmac.new(b"whsec-one", PD_BODY, hashlib.sha256).hexdigest().upper()
    assert verify_pagerduty_signature(["whsec-one"], PD_BODY, f"v1=deadbeef, v1={digest}")


@pytest.mark.parametrize(
    "header",
    ["", None, "v1=", "v2=" + "0" * 64, "garbage", ",,,", "v1=é"],
    ids=["empty", "missing", "no-digest", "unknown-version", "garbage", "only-commas", "non-ascii"],
)
def test_malformed_pagerduty_headers_are_rejected_without_raising(header):
    assert not verify_pagerduty_signature(["whsec-one"], PD_BODY, header)


def test_a_signature_under_an_unknown_version_prefix_does_not_count():
    digest = hmac.new(b"whsec-one", PD_BODY, hashlib.sha256).hexdigest()
    assert not verify_pagerduty_signature(["whsec-one"], PD_BODY, f"v0={digest}")


def test_no_pagerduty_secrets_or_empty_ones_never_verify():
    assert not verify_pagerduty_signature([], PD_BODY, sign_pagerduty("x", PD_BODY))
    assert not verify_pagerduty_signature([""], PD_BODY, sign_pagerduty("", PD_BODY))
