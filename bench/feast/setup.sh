#!/usr/bin/env bash
# Create bench/.venv-feast (git-ignored) with Feast for bench/feast_training_set.py.
#   bash bench/feast/setup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venv-feast"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
"$venv/bin/python" -c "import feast; print('feast', feast.__version__, 'in', '$venv')"
