"""The shape of the code: imports flow one way (shared/DESIGN.md) and the CLI stays lean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "berth"

# package -> the berth packages it may import
ALLOWED = {
    "errors": set(),
    "dockerignore": set(),
    "units": set(),
    "jsonc": set(),
    "events": set(),
    # root-confined file access (directory fds, O_NOFOLLOW) and atomic writes: every package's
    "fs": {"errors"},
    # the prune routes' filters (until, label)
    "filters": {"errors", "units"},
    "oci": {"errors"},
    "reference": {"errors"},
    "linux": {"fs", "errors"},
    "content": {"fs", "oci", "errors"},
    "storage": {"fs", "content", "oci", "errors", "linux"},
    "metadata": {"fs", "errors"},
    "cgroups": {"fs", "errors", "oci", "linux"},
    "runtime": {"fs", "cgroups", "oci", "linux", "errors", "jsonc"},
    "registry": {"fs", "oci", "reference", "errors"},
    "images": {"fs", "content", "storage", "metadata", "reference", "oci", "errors", "registry",
               "units"},
    "volumes": {"fs", "metadata", "storage", "errors"},
    "networks": {"fs", "filters", "metadata", "linux", "errors"},
    # containers reach the runtime as processes; they import its spec data and names only
    "containers": {"fs", "runtime", "storage", "images", "metadata", "cgroups", "errors", "linux",
                   "reference", "units", "oci", "volumes", "networks"},
    "build": {"fs", "images", "containers", "storage", "metadata", "reference", "errors", "units",
              "registry"},
    # the services it serves (each handed to it by the daemon), never what lies below them
    "api": {"containers", "images", "errors", "reference", "events", "volumes", "networks",
            "build"},
    "daemon": {"fs", "api", "containers", "images", "content", "storage", "metadata", "cgroups",
               "errors", "runtime", "oci", "reference", "linux", "units", "events",
               "volumes", "networks", "registry", "build"},
    "client": {"errors", "jsonc"},
    # reference only where a name must be read the way the daemon reads it (pull, push)
    "cli": {"client", "errors", "units", "reference", "dockerignore", "jsonc"},
}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else ""


def test_imports_flow_downward() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        pkg = _package(path)
        if not pkg:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                parts = n.split(".")
                if parts[0] != "berth" or len(parts) < 2:
                    continue
                target = parts[1]
                if target == "__version__" or target == pkg or not (SRC / target).exists() and \
                        not (SRC / f"{target}.py").exists():
                    continue
                if target not in ALLOWED[pkg]:
                    bad.append(f"{path.relative_to(SRC)} imports berth.{target}")
    assert bad == []


def test_cli_fast_path_is_lean() -> None:
    code = ("import sys, berth.cli.main as m\n"
            "heavy = [n for n in ('aiohttp', 'asyncio', 'rich', 'yaml', 'berth.daemon', "
            "'berth.containers', 'http.client', 'dataclasses', 'typing', 'urllib.parse', "
            # each of these costs milliseconds: every command pays for them
            "'re', 'enum', 'json', 'socket', 'signal', 'threading', 'selectors') "
            "if n in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_launcher_is_ours() -> None:
    """The installed `berth` is bin/berth (pip's entry-point wrapper would import `re`)."""
    launcher = Path(sys.executable).parent / "berth"
    if launcher.exists():
        assert "import re" not in launcher.read_text()


def test_runtime_command_is_lean() -> None:
    """berth-runtime's `run` is one interpreter start-up and then its imports: what it
    imports is most of its own start-up. ctypes' package, libseccomp's module and `warnings`
    come only when a spec needs them."""
    code = ("import sys, berth.runtime.cli\n"
            "heavy = [n for n in ('argparse', 'json', 're', 'enum', 'dataclasses', 'typing', "
            "'socket', 'signal', 'shutil', 'contextlib', 'ctypes', 'ctypes.util', 'hashlib', "
            "'subprocess', 'runpy', 'warnings', 'berth.linux.seccomp', 'berth.runtime.spec', "
            "'berth.runtime.sealed', 'termios') if n in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c",
                          f"import sys; sys.path[:0] = [{str(SRC.parent)!r}]\n" + code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
