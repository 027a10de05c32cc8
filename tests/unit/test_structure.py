"""The shape of the code: imports flow one way (shared/DESIGN.md) and the CLI stays lean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "berth"

# package -> the berth packages it may import
ALLOWED = {
    "errors": set(),
    "dockerignore": set(),
    "units": set(),
    "jsonc": set(),
    # Go's text/template for `--format`: a leaf, imported by the CLI only when a format is given
    "gotemplate": set(),
    "events": set(),
    # `--detach-keys`: the CLI and the daemon parse them alike
    "detachkeys": set(),
    # command-line flags with typed results: berth's and berth-runtime's
    "cmdline": set(),
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
    # cmdline: berth-runtime's flags are to be parsed by the CLI's parser (not yet adopted)
    "runtime": {"fs", "cgroups", "oci", "linux", "errors", "jsonc", "cmdline"},
    # the monitors and the fork server; berthd reaches them through shim.protocol (containers)
    # and shim.launch (daemon) only
    "shim": {"runtime", "cgroups", "linux", "fs"},
    "registry": {"fs", "oci", "reference", "errors"},
    "images": {"fs", "content", "storage", "metadata", "reference", "oci", "errors", "registry",
               "units"},
    "volumes": {"fs", "metadata", "storage", "errors"},
    "networks": {"fs", "filters", "metadata", "linux", "errors"},
    # containers reach the runtime as processes, through the shim protocol (SHIM_FOR)
    "containers": {"fs", "shim", "storage", "images", "metadata", "cgroups", "errors", "linux",
                   "reference", "units", "oci", "volumes", "networks", "detachkeys"},
    # DESIGN.md: images and containers (steps run through builder.runner.ContainerRunner), and
    # the leaf modules
    "builder": {"fs", "images", "containers", "reference", "errors", "units", "dockerignore"},
    # the services it serves (each handed to it by the daemon), never what lies below them
    "api": {"containers", "images", "errors", "reference", "events", "volumes", "networks",
            "builder"},
    "daemon": {"fs", "api", "containers", "images", "content", "storage", "metadata", "cgroups",
               "errors", "shim", "oci", "reference", "linux", "units", "events",
               "volumes", "networks", "registry", "builder", "cri"},
    # the Kubernetes CRI: over the services (DESIGN.md), with registry's AuthConfig (what the
    # distribution service takes) and linux for its pause process's unshare
    "cri": {"containers", "images", "errors", "fs", "reference", "registry", "linux", "events"},
    "client": {"errors", "jsonc"},
    # reference only where a name must be read the way the daemon reads it (pull, push)
    "cli": {"client", "errors", "units", "reference", "dockerignore", "jsonc", "gotemplate",
            "detachkeys", "cmdline", "compose"},
    # compose files and the orchestrator, a client of the Engine API only (DESIGN.md)
    "compose": {"client", "errors", "units", "jsonc", "fs", "dockerignore"},
}


# package -> the only modules of the shim it may import: berthd's services speak the protocol and
# never load the monitor's or the runtime's code
SHIM_FOR = {"containers": {"berth.shim.protocol"}, "daemon": {"berth.shim.launch"}}


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


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from berth.shim import protocol` names the module berth.shim.protocol
            out += [f"{node.module}.{a.name}" if node.module in ("berth", "berth.shim")
                    else node.module for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_services_see_only_the_shim_protocol() -> None:
    """containers import `berth.shim.protocol` and the daemon `berth.shim.launch`, nothing
    else of the shim (the runtime's code must not load into berthd)."""
    bad = []
    for pkg, allowed in SHIM_FOR.items():
        for path in (SRC / pkg).rglob("*.py"):
            for name in _imports(path):
                if name == "berth.shim" or name.startswith("berth.shim.") and \
                        not any(name == a or name.startswith(a + ".") for a in allowed):
                    bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert bad == []


def test_daemon_does_not_load_the_runtime() -> None:
    """Importing the container service loads no module of the runtime or the monitor."""
    code = ("import sys, berth.containers, berth.containers.execs\n"
            "print(sorted(n for n in sys.modules if n.startswith(('berth.runtime', "
            "'berth.shim.monitor', 'berth.shim.runtimes', 'berth.shim.stdio', "
            "'berth.shim.forkserver'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_fast_path_is_lean() -> None:
    code = ("import sys, berth.cli.main as m\n"
            "heavy = [n for n in ('aiohttp', 'asyncio', 'rich', 'yaml', 'berth.daemon', "
            "'berth.containers', 'http.client', 'dataclasses', 'typing', 'urllib.parse', "
            # each of these costs milliseconds: every command pays for them
            "'re', 'enum', 'json', 'socket', 'signal', 'threading', 'selectors', "
            # Go's templates: only a command given --format imports them
            "'berth.gotemplate') "
            "if n in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("command", "modules"), [
    ("ps", ["fmt", "main", "ps"]),
    ("exec", ["attach", "main"]),
    ("run", ["attach", "create", "main", "runflags"]),
])
def test_cli_commands_load_only_their_module(command: str, modules: list[str]) -> None:
    """The command table loads one command group's module: `ps` does not pay for `run`'s flags
    nor the TTY handling, `exec` not for the create body."""
    code = ("import sys, berth.cli.main as m\n"
            f"m.load(m.COMMANDS[{command!r}])\n"
            "print(sorted(n.split('.')[-1] for n in sys.modules if n.startswith('berth.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(modules)


def test_template_package_is_lean() -> None:
    """berth.gotemplate is what a --format adds to a command's start-up: a few modules of its
    own (printf's verbs, JSON and the tabwriter come when first used) and nothing of the
    standard library's."""
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "import berth.gotemplate\n"
            "print(sorted(n for n in set(sys.modules) - before if n != '__future__'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(["berth"] + [f"berth.gotemplate{m}" for m in (
        "", ".evaluate", ".funcs", ".lex", ".parse", ".values")])


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
            "'subprocess', 'runpy', 'warnings', 'berth.linux.seccomp', 'berth.oci.defaults', "
            "'berth.runtime.sealed', 'termios') if n in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c",
                          f"import sys; sys.path[:0] = [{str(SRC.parent)!r}]\n" + code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
