"""`llmcost report`: spend over a time range, broken down as asked, with hints on what to do.

- `periods`: `--since/--until/--period` into a UTC time range.
- `query`: the breakdown rows, read from the rollups (or, for `session`, from raw events).
- `hints`: efficiency hints computed from the rows and the price table, each with its figures.
- `render`: table, JSON, CSV and Markdown output.
"""
