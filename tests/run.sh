#!/usr/bin/env bash
# The test command (README's quick start; .ci/run calls it): install what is missing, then lint, type-check
# and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash packaging/setup-dev.sh
echo "== ruff"
.venv/bin/ruff check supervisor vrrpd checkerd ipvsd tests
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
