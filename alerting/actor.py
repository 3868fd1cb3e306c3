"""Who runs a command that changes budgets or alerts, when `--by` does not say (recorded as `updated_by`, `by`)."""

from __future__ import annotations

import os
import pwd


def command_user() -> str:
    """`$USER`, else `$LOGNAME`, else the account of the process's user id, else `cli`.

    A shell started by `su`, `docker exec` or cron often has no `$USER`: every change made from one was
    recorded as by `cli` (and an ack from a shell whose `$USER` was empty as by nobody).
    """
    for name in ("USER", "LOGNAME"):
        if value := os.environ.get(name, "").strip():
            return value
    try:
        return pwd.getpwuid(os.getuid()).pw_name or "cli"
    except KeyError:  # a container's user id with no account
        return "cli"


def actor(given: str | None) -> str:
    """`--by` as given, else `command_user()`: blank counts as not given.

    `llmcost alerts ack 7 --by "$ONCALL"` with `$ONCALL` unset recorded the ack as by nobody (`""`), where
    `budgets` already fell back to the account.
    """
    return given if given and given.strip() else command_user()
