#!/bin/sh
# The whole test suite, on a fresh Debian machine as root: installs what the tests need
# (system packages with apt-get, Python packages with pip), then runs pytest.
set -eu
cd "$(dirname "$0")/.."
# docker.io: a real dockerd to compare with (tests/integration/test_dockerd_compat.py)
# docker-registry and skopeo: the registries and the other client of tests/integration/test_registry.py
# runc: the conformance tests, and the containers' tests run again with runc as berthd's runtime
# docker-compose: Debian's docker-compose 1.29, the other client of tests/integration/test_compose.py
# containernetworking-plugins: the CNI plug-ins (bridge, host-local, portmap, loopback) that
# tests/integration/test_cri.py networks its pods with
# qemu-user: runs berth-runtime's aarch64 trampoline (tests/unit/test_trampoline.py); bare,
# since it recommends qemu-user-binfmt, which would register foreign binaries with the kernel
# chromium and chromium-driver: the dashboard's browser tests (tests/integration/test_ui.py)
# golang-go and golang-github-docker-spdystream-dev: the SPDY client (tests/cri_spdy_client, on
# spdystream, which Kubernetes' client-go speaks SPDY with) of tests/integration/test_cri_spdy.py
# qemu-system-x86, apparmor: the cgroup v2 / AppArmor guest of tests/integration/
# test_runtime_v2_vm.py (tests/vm.py; Debian's kernel is fetched with apt-get download into
# /var/cache/berth-vm, never installed), bare: their recommends are a desktop's
EXTRA_APT="docker.io docker-registry skopeo runc docker-compose containernetworking-plugins chromium chromium-driver golang-go golang-github-docker-spdystream-dev" PIP_EXTRAS="[test]"
EXTRA_APT_BARE="qemu-user qemu-system-x86 apparmor"
. scripts/setup.sh
.venv/bin/python -m tests.vm build >/dev/null || echo "==> no guest kernel: the v2 VM tests will skip"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench   # the tree stays as `ruff format` leaves it
.venv/bin/mypy   # --strict on src (pyproject.toml [tool.mypy])
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
if [ $# -eq 0 ] && command -v runc >/dev/null; then
    echo "==> the containers' tests again, with runc as berthd's runtime"
    BERTH_TEST_RUNTIME=runc .venv/bin/python -m pytest -q -p no:cacheprovider \
        tests/integration/test_containers.py tests/integration/test_interactive.py \
        tests/integration/test_durable.py tests/integration/test_volumes.py \
        tests/integration/test_networks.py tests/integration/test_docker_cli.py \
        tests/security/test_layers_and_archives.py tests/security/test_runtime_escapes.py
fi
