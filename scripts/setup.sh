# Sourced by quickstart.sh and test.sh: system packages, then a virtual environment with berth.
# EXTRA_APT, EXTRA_APT_BARE (installed without their recommended packages) and PIP_EXTRAS add
# to what is installed.
if [ "$(id -u)" != 0 ]; then echo "berth needs root (namespaces, mounts, cgroups)" >&2; exit 1; fi
need=""
dpkg -s tini >/dev/null 2>&1 || need="$need tini"   # --init: tini-static, as docker-init
dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v iptables >/dev/null 2>&1 || need="$need iptables"   # bridge networks: NAT, isolation
command -v ps >/dev/null 2>&1 || need="$need procps"            # berth top
for pkg in ${EXTRA_APT:-}; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
bare=""
for pkg in ${EXTRA_APT_BARE:-}; do
    dpkg -s "$pkg" >/dev/null 2>&1 || bare="$bare $pkg"
done
if [ -n "$(echo $need $bare)" ]; then
    echo "==> apt-get install$need$bare"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    [ -z "$(echo $need)" ] || apt-get install -y -qq $need >/dev/null
    # shellcheck disable=SC2086
    [ -z "$(echo $bare)" ] || apt-get install -y -qq --no-install-recommends $bare >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
echo "==> pip install -e .${PIP_EXTRAS:-}"
.venv/bin/pip install -q --disable-pip-version-check -e ".${PIP_EXTRAS:-}"
# byte-compile now: the CLI's start-up is part of every command's latency, and an environment
# with PYTHONDONTWRITEBYTECODE would otherwise compile berth's modules on every run
.venv/bin/python -m compileall -q src
