"""The `timesformer-hf` command line: one module per command behind a thin dispatcher (`app.py`).

Each command module defines `register(subparsers)`, which adds its parser with nothing heavier than `argparse`, and
`run(args)`, which imports what it needs (torch, transformers) only when it runs: `timesformer-hf --help` answers
at once.
"""
