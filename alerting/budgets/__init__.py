"""Budgets: definitions, spend maintained on ingest, status, checks, threshold and forecast alerts."""
