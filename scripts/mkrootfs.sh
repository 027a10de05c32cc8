#!/bin/sh
# Make a small busybox root filesystem tarball from Debian's busybox-static, offline.
# Usage: scripts/mkrootfs.sh OUT.tar
set -eu
out=${1:?usage: mkrootfs.sh OUT.tar}
# busybox-static's binary: a dynamically linked busybox would not run inside the image
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "mkrootfs: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/tmp" "$tmp/root" "$tmp/home" "$tmp/var" "$tmp/usr/bin" \
         "$tmp/proc" "$tmp/sys" "$tmp/dev"
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tmp/bin/$applet"
done
cat > "$tmp/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
PW
cat > "$tmp/etc/group" <<'GR'
root:x:0:
daemon:x:1:
tty:x:5:
staff:x:50:app
nogroup:x:65534:
app:x:1000:
GR
mkdir -p "$tmp/home/app" && chown 1000:1000 "$tmp/home/app"
tar --numeric-owner -C "$tmp" -cf "$out" .
