#!/bin/sh
# The whole test suite, on a fresh Debian machine as root: installs what the tests need
# (system packages with apt-get, Python packages with pip), then runs pytest.
set -eu
cd "$(dirname "$0")/.."
# docker.io: a real dockerd to compare with (tests/integration/test_dockerd_compat.py)
# docker-registry and skopeo: the registries and the other client of tests/integration/test_registry.py
EXTRA_APT="docker.io docker-registry skopeo" PIP_EXTRAS="[test]"
. scripts/setup.sh
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
