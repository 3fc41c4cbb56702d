#!/usr/bin/env bash
# The README's "run the main job": installs what is missing, then runs pykeepalived inside network
# namespaces it creates (never touching the root namespace) and shows it working. See tests/lab/demo.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ "$(id -u)" -ne 0 ]; then echo "demo: run as root (it creates network namespaces)" >&2; exit 1; fi
bash packaging/setup-dev.sh
exec .venv/bin/python -m tests.lab.demo "$@"
