#!/bin/sh
# Install the Debian packages given as arguments that are not installed yet; quiet and fast
# (a few `dpkg -s`) when all are there. A package counts as installed only in state
# "install ok installed" (`dpkg -s` alone also succeeds for a removed package whose config
# files remain). Uses sudo only when not root.
set -eu
missing=""
for p in "$@"; do
	dpkg -s "$p" 2>/dev/null | grep -qx 'Status: install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
