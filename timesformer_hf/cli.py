"""`python -m timesformer_hf.cli` (e.g. under `accelerate launch`): the `timesformer-hf` command."""

import sys

from .commands.app import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
