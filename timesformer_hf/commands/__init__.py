"""The `timesformer-hf` command line: one module per command behind a thin dispatcher (`app.py`).

Each command module defines `register(subparsers)`, which adds its parser with nothing heavier than `argparse`, and
`run(args)`, which imports what the command needs when it runs.
"""
