"""Convert original TimeSformer checkpoints (`.pyth`) into Hugging Face Hub repos.

One checkpoint:

    python convert/convert_original_checkpoint.py --checkpoint TimeSformer_divST_8x32_224_K400.pyth \
        --output-dir converted/timesformer-base-k400 [--labels kinetics400.json] [--push-to-hub me/timesformer-k400]

Every `.pyth` file of a folder (into `--output-dir/<file name>`, with a summary table):

    python convert/convert_original_checkpoint.py --checkpoint-dir checkpoints/ --output-dir converted/
"""

import sys

from timesformer_hf.commands.convert import main as convert_main

if __name__ == "__main__":
    sys.exit(convert_main())
