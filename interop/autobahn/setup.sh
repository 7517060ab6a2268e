#!/usr/bin/env bash
# Installs kosoku (Autobahn's case files, run from Python) in interop/autobahn/.venv,
# where examples/tests/autobahn.rs looks for it. Pinned: a new kosoku may judge cases
# differently, and the expected verdicts are listed in README.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/kosoku ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check kosoku==0.1.0
fi
.venv/bin/kosoku --help >/dev/null
echo "kosoku ready: $(pwd)/.venv/bin/kosoku"
