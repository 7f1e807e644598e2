#!/usr/bin/env bash
# Installs msa (mounted at ~/msa by the cluster configs) and its pinned dependencies into
# ~/msa-venv with Python 3.11, on every node. Idempotent: a re-run only reinstalls msa itself.
set -euo pipefail
if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  curl -LsSf https://astral.sh/uv/install.sh | sh
fi
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
[ -x "$HOME/msa-venv/bin/python" ] || "$UV" venv --python 3.11 "$HOME/msa-venv"
VIRTUAL_ENV="$HOME/msa-venv" "$UV" pip install -e "$HOME/msa"
# Every shell on the node (ray exec / attach, hence the driver) talks to Ray with the token.
grep -qx 'export RAY_AUTH_MODE=token' "$HOME/.bashrc" 2>/dev/null || echo 'export RAY_AUTH_MODE=token' >> "$HOME/.bashrc"
# Optional: pretrained weights into this node's caches. Trials do not need them (the driver
# resolves the weights once and ships them to every trial through Ray); prefetching on the head
# only saves the driver's download at each search. A node without internet just says so.
if [ "${MSA_PREFETCH_WEIGHTS:-1}" = 1 ]; then
  "$HOME/msa-venv/bin/python" -m msa.weights fetch --no-progress \
    || echo "msa: weights not prefetched here; the driver downloads them before each search and ships them to the trials"
fi
