#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks to run and test pykeepalived, idempotently:
# Debian packages (keepalived as oracle/peer, ipvsadm, nftables, libnftables, tcpdump, busybox for UML),
# the User-Mode Linux kernel in .cache/uml, a virtual environment in .venv with the project and its
# test extra.
# Fast when everything is already there: each step checks before it acts.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

APT_PKGS=(keepalived ipvsadm nftables libnftables1 tcpdump busybox-static iproute2 procps psmisc iputils-ping openssl conntrack)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's keepalived package may start a daemon of its own: it is only our oracle and peer.
    pkill -x keepalived 2>/dev/null || true
fi

# Kernel IPVS is tested inside User-Mode Linux (the build machines' kernel has no IPVS).
bash packaging/setup-uml.sh

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.pykeepalived-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing pykeepalived and its test extra into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
    echo "$want" >"$stamp"
fi
