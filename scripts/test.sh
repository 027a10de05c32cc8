#!/bin/sh
# The whole test suite, on a fresh Debian machine as root: installs what the tests need
# (system packages with apt-get, Python packages with pip), then runs pytest.
set -eu
cd "$(dirname "$0")/.."
# docker.io: a real dockerd to compare with (tests/integration/test_dockerd_compat.py)
EXTRA_APT="docker.io" PIP_EXTRAS="[test]"
. scripts/setup.sh
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
