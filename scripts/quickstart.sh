#!/bin/sh
# berth's quick start, offline, on a fresh Debian machine as root: installs what berth needs,
# makes a busybox base image, starts berthd, imports the image and runs containers from it.
set -eu
cd "$(dirname "$0")/.."
. scripts/setup.sh
scripts/mkrootfs.sh /tmp/berth-busybox.tar

export BERTH_HOST=unix:///run/berth/berth.sock
if ! .venv/bin/berth version >/dev/null 2>&1; then
    echo "==> starting berthd (log in /var/log/berthd.log)"
    .venv/bin/berthd --pidfile /run/berthd.pid >/var/log/berthd.log 2>&1 &
    i=0; until .venv/bin/berth version >/dev/null 2>&1; do
        i=$((i+1)); [ $i -lt 100 ] || { echo "berthd did not start" >&2; exit 1; }; sleep 0.1; done
    started=1
fi
berth() { echo "\$ berth $*"; .venv/bin/berth "$@"; }
berth import /tmp/berth-busybox.tar busybox
berth images
berth run --rm busybox echo "hello from a berth container"
berth run --rm --network none --memory 64m --pids-limit 50 busybox sh -c 'hostname; id; ps'
berth run -d --name quickstart busybox sh -c 'for i in 1 2 3; do echo tick $i; sleep 1; done'
berth ps
berth logs -f quickstart
berth ps -a
berth rm quickstart
ctx=$(mktemp -d)
printf 'hello from a berth build\n' > "$ctx/greeting.txt"
cat > "$ctx/Dockerfile" <<'DF'
FROM busybox
COPY greeting.txt /srv/
RUN wc -c /srv/greeting.txt > /srv/size
CMD ["cat", "/srv/greeting.txt", "/srv/size"]
DF
berth build -t quickstart-app "$ctx"
berth build -t quickstart-app "$ctx"
berth run --rm quickstart-app
berth rmi quickstart-app
rm -rf "$ctx"
if [ "${KEEP_DAEMON:-}" = "" ] && [ "${started:-}" = 1 ]; then
    kill "$(cat /run/berthd.pid)"
    echo "==> done; berthd stopped (KEEP_DAEMON=1 leaves it running)"
else
    echo "==> done; berthd is running: export BERTH_HOST=$BERTH_HOST, or point the docker CLI at it:"
    echo "    DOCKER_HOST=$BERTH_HOST docker ps"
fi
