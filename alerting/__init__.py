"""llmcost alerting: budgets, spend projection, spike detection and the alert gateway."""
