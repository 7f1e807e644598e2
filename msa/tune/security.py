"""Token authentication for the private Ray cluster a run starts.

Ray 2.60 binds its servers (GCS, raylet, workers) to the node's network address whatever it
is told: ``ray.init`` turns 127.0.0.1 into the node IP. So a private run cannot keep them on
loopback; instead every peer must present a token that only this run's processes have: a
fresh random one, passed to Ray's processes (and the trials) through the environment. Ray
reads these settings when it is imported, so this runs before the first ``import ray``.
"""

from __future__ import annotations

import os
import secrets

AUTH_MODE = "RAY_AUTH_MODE"
AUTH_TOKEN = "RAY_AUTH_TOKEN"
TOKEN_BYTES = 32


def require_token_for_private_ray() -> None:
    """Token mode with a fresh token, unless the user configured Ray's authentication."""
    if AUTH_MODE in os.environ:
        return
    os.environ[AUTH_MODE] = "token"
    os.environ.setdefault(AUTH_TOKEN, secrets.token_hex(TOKEN_BYTES))
