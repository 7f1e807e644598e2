"""tune_main.py whose trials fail once at an epoch: the test entry point for retries.

    python tests/failing_tune_main.py EPOCH [tune_main.py flags ...]

Every trial's first attempt raises at EPOCH (TrialSettings.fail_at_epoch); production code
never sets it.
"""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tune_main.py, search_spaces/

from msa.tune.security import require_token_for_private_ray  # noqa: E402

require_token_for_private_ray()  # before Ray is imported, as tune_main.py does
import msa.tune.run as run  # noqa: E402
import tune_main  # noqa: E402


def main() -> int:
    epoch = int(sys.argv[1])
    settings_of = run.trial_settings
    run.trial_settings = lambda *args, **kwargs: dataclasses.replace(
        settings_of(*args, **kwargs), fail_at_epoch=epoch
    )
    return tune_main.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
