"""A throwaway KVM guest on Debian's own kernel, for what this host's kernel cannot show: a
cgroup-v2-only hierarchy (`cgroup_no_v1=all`) and AppArmor.

Nothing is installed into this machine's /boot. The kernel package that `linux-image-amd64`
depends on is fetched with `apt-get download` and unpacked into CACHE, with an initramfs built
here (busybox-static, the kernel's 9p/virtio/overlay/null_blk modules, an /init script). The
guest's root is this machine's / shared read-only over 9p with a tmpfs overlay for writes, so it
runs the same venv, berth-runtime and runc; a second 9p share (the job directory) carries the
script in and the results out. The guest has no network device at all (`-nic none`).

With KVM a run boots in a second or two. Where /dev/kvm is PVM's (which boots only kernels
built as PVM guests) or BERTH_VM_ACCEL=tcg, qemu emulates the CPU instead: some 10 s to boot,
and test_runtime_v2_vm.py takes three to four minutes.

    python -m tests.vm build            # the cache, once (also done by the first run)
    python -m tests.vm run 'cat /proc/self/cgroup; ls /sys/fs/cgroup'
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("BERTH_VM_CACHE", "/var/cache/berth-vm"))
# the checkout: the guest mounts it at the same path
SRC = Path(__file__).resolve().parents[1]
QEMU = "qemu-system-x86_64"
# what /init loads, in this order after their dependencies: 9p over virtio (the shares),
# overlay (a writable root, and berthd's), null_blk (a block device for io.max and io.weight),
# bridge and veth (a berthd's default network)
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "null_blk", "bridge", "veth")
CMDLINE = (
    "console=ttyS0 panic=-1 quiet loglevel=3 systemd.unified_cgroup_hierarchy=1 "
    "cgroup_no_v1=all apparmor=1 security=apparmor"
)

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt/host /mnt/rw /newroot
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /mod/$m.ko || echo "vm: insmod $m failed"; done
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o,ro,cache=loose hostroot /mnt/host || { echo "vm: no host root"; poweroff -f; }
mount -t tmpfs -o mode=755 rw /mnt/rw; mkdir /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work root /newroot
for d in proc sys dev; do mount --move /$d /newroot/$d; done
mkdir -p /newroot/job
mount -t 9p -o $o,cache=none job /newroot/job
mount -t cgroup2 -o nsdelegate cgroup2 /newroot/sys/fs/cgroup
mount -t securityfs securityfs /newroot/sys/kernel/security 2>/dev/null
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
for d in tmp run dev/shm; do mount -t tmpfs -o mode=1777 tmpfs /newroot/$d; done
mount -t tmpfs tmpfs /newroot/var/lib
# the checkout the tests run from, wherever it is (the tmpfs mounts above may hide it: CI's
# clone can live under /tmp), shared on its own, with a tmpfs overlay for writes
src=$(sed -n 's/.* berth\.src=\([^ ]*\).*/\1/p' /newroot/proc/cmdline)
if [ -n "$src" ]; then
    mkdir -p /mnt/src /mnt/rw/src-upper /mnt/rw/src-work /newroot$src
    mount -t 9p -o $o,ro,cache=loose src /mnt/src || echo "vm: no checkout share"
    mount -t overlay -o lowerdir=/mnt/src,upperdir=/mnt/rw/src-upper,workdir=/mnt/rw/src-work \
        srcov /newroot$src || echo "vm: no checkout overlay"
fi
hostname berth-vm
echo "vm: up"
# switch_root, not chroot: AppArmor names a file by its path from the mount namespace's root
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec switch_root /newroot /bin/sh -c '
cd /job && /bin/sh /job/run.sh > /job/out 2>&1
echo $? > /job/rc
sync
echo "vm: done"
/bin/busybox poweroff -f'
"""


class Unavailable(Exception):
    """What the guest needs and this machine lacks, said as the reason to skip."""


def missing() -> str:
    """Why a guest cannot run here, or "" where it can."""
    if os.uname().machine != "x86_64":
        return "the guest is Debian's amd64 kernel: this machine is not x86_64"
    if not os.path.exists("/dev/kvm") and os.environ.get("BERTH_VM_ACCEL") != "tcg":
        return (
            "/dev/kvm is absent: no KVM for the cgroup v2 / AppArmor guest "
            "(BERTH_VM_ACCEL=tcg runs it emulated, slowly)"
        )
    if not shutil.which(QEMU):
        return f"{QEMU} is not installed (apt-get install --no-install-recommends qemu-system-x86)"
    if not os.path.exists("/bin/busybox") or b"ELF" not in Path("/bin/busybox").read_bytes()[:4]:
        return "busybox-static is not installed"
    return ""


def _accel() -> list[str]:
    """KVM where it can boot a stock kernel, else qemu's own emulation (TCG: some ten times
    slower, a boot in ~10 s). KVM on PVM (/sys/module/kvm_pvm, as in some cloud sandboxes)
    runs only kernels built as PVM guests: Debian's hangs right after the firmware there."""
    if (
        os.path.exists("/dev/kvm")
        and not os.path.exists("/sys/module/kvm_pvm")
        and os.environ.get("BERTH_VM_ACCEL", "kvm") == "kvm"
    ):
        return ["-enable-kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi"]


def _kernel_package() -> str:
    """The package name linux-image-amd64 depends on (e.g. linux-image-6.1.0-57-amd64)."""
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        word = line.split(":", 1)
        if word[0].strip() == "Depends" and word[1].strip().startswith("linux-image-"):
            return word[1].strip()
    raise Unavailable("apt-cache: linux-image-amd64 depends on no linux-image package")


def _kernel() -> tuple[Path, Path]:
    """(vmlinuz, its modules directory), fetched and unpacked once into CACHE."""
    done = CACHE / "kernel"
    if not done.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        pkg = _kernel_package()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            # apt-get download writes into the current directory
            r = subprocess.run(
                ["apt-get", "download", "-q", pkg], cwd=tmp, capture_output=True, text=True
            )
            if r.returncode != 0:
                raise Unavailable(f"apt-get download {pkg} failed: {r.stderr.strip()}")
            deb = next(Path(tmp).glob("*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            try:
                os.rename(Path(tmp) / "x", done)
            except OSError:
                if not done.exists():  # else another run unpacked it meanwhile
                    raise
    vmlinuz = next((done / "boot").glob("vmlinuz-*"))
    return vmlinuz, next((done / "lib" / "modules").iterdir())


def _depends(ko: Path) -> list[str]:
    """A module's `depends=` from its .modinfo strings."""
    data = ko.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + 9 : data.index(b"\0", at + 9)].decode()
    return [d for d in value.split(",") if d]


def _module_order(moddir: Path) -> list[Path]:
    """MODULES and what they depend on, each after its dependencies."""
    index = {p.name[:-3].replace("-", "_"): p for p in moddir.rglob("*.ko")}
    order: list[Path] = []

    def visit(name: str) -> None:
        ko = index[name.replace("-", "_")]
        if ko in order:
            return
        for dep in _depends(ko):
            visit(dep)
        order.append(ko)

    for m in MODULES:
        visit(m)
    return order


def module(name: str) -> Path:
    """The kernel module `name` of the guest's kernel, as the guest sees it (this machine's /
    is the guest's), to insmod from a guest's script. Raises Unavailable as `run` does."""
    why = missing()
    if why:
        raise Unavailable(why)
    return next(_kernel()[1].rglob(f"{name}.ko"))


def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An initramfs in the kernel's "newc" cpio format: (path, mode, data) each."""
    out = io.BytesIO()

    def pad() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (path, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        name = path.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name)
        pad()
        out.write(data)
        pad()
    return out.getvalue()


def build() -> tuple[Path, Path]:
    """(vmlinuz, initramfs), made once into CACHE."""
    vmlinuz, moddir = _kernel()
    initrd = CACHE / "initramfs.cpio"
    if not initrd.exists() or initrd.stat().st_mtime < Path(__file__).stat().st_mtime:
        order = _module_order(moddir)
        d = stat.S_IFDIR | 0o755
        entries = [
            ("bin", d, b""),
            ("mod", d, b""),
            ("bin/busybox", stat.S_IFREG | 0o755, Path("/bin/busybox").read_bytes()),
            ("init", stat.S_IFREG | 0o755, INIT.encode()),
            (
                "modules.order",
                stat.S_IFREG | 0o644,
                "".join(p.name[:-3] + "\n" for p in order).encode(),
            ),
        ]
        entries += [(f"mod/{p.name}", stat.S_IFREG | 0o644, p.read_bytes()) for p in order]
        tmp = initrd.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_cpio(entries))
        os.replace(tmp, initrd)
    return vmlinuz, initrd


def run(script: str, job: Path, *, timeout: float = 300, memory_mb: int = 1024) -> str:
    """Boot the guest, run `script` (sh) in /job (the host's `job`) as root on the v2-only
    hierarchy and power off; its output, also in job/out. Raises Unavailable where no guest
    can run here, RuntimeError where it did not finish."""
    why = missing()
    if why:
        raise Unavailable(why)
    vmlinuz, initrd = build()
    (job / "run.sh").write_text(script)
    for f in ("out", "rc"):
        (job / f).unlink(missing_ok=True)
    argv = [
        QEMU,
        *_accel(),
        "-m",
        str(memory_mb),
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        f"{CMDLINE} berth.src={SRC}",
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={job},mount_tag=job,security_model=none,multidevs=remap",
        "-virtfs",
        f"local,path={SRC},mount_tag=src,security_model=none,readonly=on,multidevs=remap",
    ]
    try:
        r = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"the guest did not finish in {timeout}s: {e.stdout!r}") from None
    if not (job / "rc").exists():
        raise RuntimeError(
            f"the guest stopped before its script ended (qemu {r.returncode}):"
            f"\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
        )
    out = (job / "out").read_text(errors="replace")
    if (job / "rc").read_text().strip() != "0":
        raise RuntimeError(f"the guest's script failed:\n{out[-6000:]}")
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        print(*build())
        return 0
    if argv[:1] == ["run"] and len(argv) == 2:
        with tempfile.TemporaryDirectory() as job:
            try:
                print(run(argv[1], Path(job)), end="")
            except RuntimeError as e:
                print(e, file=sys.stderr)
                return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
