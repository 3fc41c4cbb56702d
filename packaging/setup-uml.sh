#!/usr/bin/env bash
# Unpack Debian's user-mode-linux into .cache/uml (not installed system-wide): the IPVS tests boot it,
# because the build machines' kernel has no IPVS. Idempotent; needs busybox-static (setup-dev.sh has it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/.cache/uml"
if [ -x "$dest/usr/bin/linux.uml" ] && ls "$dest"/usr/lib/uml/modules/*/modules.dep >/dev/null 2>&1; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup: fetching user-mode-linux into .cache/uml"
(cd "$tmp" && apt-get download -qq user-mode-linux >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq user-mode-linux; })
rm -rf "$dest"
mkdir -p "$dest"
dpkg -x "$tmp"/user-mode-linux_*.deb "$dest"
test -x "$dest/usr/bin/linux.uml"
