#!/bin/sh
# The whole test suite, on a fresh Debian machine as root: installs what the tests need
# (system packages with apt-get, Python packages with pip), then runs pytest.
set -eu
cd "$(dirname "$0")/.."
PIP_EXTRAS="[test]"
. scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
