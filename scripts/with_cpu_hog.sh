#!/usr/bin/env bash
# Run a command with one busy process beside it (races show up on a loaded machine; a flaky
# test is a bug). The hog is stopped however the command ends.
set -euo pipefail
python3 -c 'while True: pass' &
hog=$!
trap 'kill $hog 2>/dev/null || true' EXIT
"$@"
