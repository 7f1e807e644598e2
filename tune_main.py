"""``python tune_main.py ...``: the seed's entry to the search, an alias of ``msa search`` (msa.cli.search).

python tune_main.py --space video_transformer            # embedded sample, ASHA + Optuna
python tune_main.py --list-spaces
"""

import sys

from msa.cli.search import main

if __name__ == "__main__":
    sys.exit(main())
