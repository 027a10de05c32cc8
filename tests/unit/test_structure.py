"""The shape of the code: imports flow one way, as the package table of DESIGN.md (the repo's own,
read here) says, and the CLI stays lean."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "berth"
DESIGN = ROOT / "DESIGN.md"


def _table() -> dict[str, list[str]]:
    """DESIGN.md's package table: package -> the names in backticks in its "may import" cell
    (`pkg`, or `pkg.module` for that module of it only)."""
    rows: dict[str, list[str]] = {}
    lines = iter(DESIGN.read_text().splitlines())
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:3] == ["package", "owns", "may import"]:
            break
    else:
        raise AssertionError("DESIGN.md has no table with the columns package | owns | may import")
    next(lines)  # | --- | --- | ...
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0])
        assert name, f"DESIGN.md: a row's package is not one name in backticks: {line!r}"
        rows[name.group(1)] = re.findall(r"`([\w.]+)`", cells[2])
    return rows


TABLE = _table()
# package -> the berth packages it may import
ALLOWED = {pkg: {n.split(".")[0] for n in names} for pkg, names in TABLE.items()}
# (package, package it imports) -> the only modules of it that it may import, where the table
# names modules (`shim.protocol`): berthd's services speak the protocol and never load the
# monitor's or the runtime's code
ONLY = {
    (pkg, target): {f"berth.{n}" for n in names if n.split(".")[0] == target}
    for pkg, names in TABLE.items()
    for target in {n.split(".")[0] for n in names if "." in n}
}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else ""


PACKAGES = {_package(p) for p in SRC.rglob("*.py")} - {""}


def _imports(path: Path) -> list[str]:
    """The berth modules (or names of a package) a file imports: `from berth.shim import
    protocol` names berth.shim.protocol."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [
                f"{node.module}.{a.name}" if node.module.count(".") < 2 else node.module
                for a in node.names
            ]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [n for n in out if n.startswith("berth.")]


def test_design_table_covers_the_code() -> None:
    """Every package has its row, and every name a row allows is a row (a package not written
    yet included) or, named with a module, a module that exists: a typo or a word of prose in
    backticks in that column must not pass for a rule."""
    assert sorted(PACKAGES - set(TABLE)) == []
    bad = []
    for pkg, names in TABLE.items():
        for n in names:
            target, _, module = n.partition(".")
            if target not in TABLE:
                bad.append(f"{pkg}: {n}")
            elif module and not (
                (SRC / target / f"{module}.py").exists() or (SRC / target / module).is_dir()
            ):
                bad.append(f"{pkg}: {n} (no such module)")
    assert bad == []


def test_imports_flow_downward() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        pkg = _package(path)
        if not pkg:
            continue
        for n in _imports(path):
            target = n.split(".")[1]
            if target == "__version__" or target == pkg or target not in PACKAGES:
                continue
            if target not in ALLOWED[pkg]:
                bad.append(f"{path.relative_to(SRC)} imports berth.{target}")
    assert bad == []


def test_packages_named_with_a_module_reach_only_it() -> None:
    """containers import `berth.shim.protocol` and the daemon `berth.shim.launch`, nothing
    else of the shim (the runtime's code must not load into berthd): DESIGN.md names them
    `shim.protocol` and `shim.launch`."""
    assert ONLY[("containers", "shim")] == {"berth.shim.protocol"}
    assert ONLY[("daemon", "shim")] == {"berth.shim.launch"}
    bad = []
    for (pkg, target), allowed in ONLY.items():
        if not (SRC / pkg).is_dir():
            continue
        for path in (SRC / pkg).rglob("*.py"):
            for name in _imports(path):
                if (name == f"berth.{target}" or name.startswith(f"berth.{target}.")) and not any(
                    name == a or name.startswith(a + ".") for a in allowed
                ):
                    bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert bad == []


# what runs in the shim's processes and the runtime's, never in berthd's
SHIM_SIDE = (
    "berth.runtime",
    "berth.shim.monitor",
    "berth.shim.runtimes",
    "berth.shim.stdio",
    "berth.shim.forkserver",
    "berth.shim.host",
    "berth.shim.held",
)


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for cand in (SRC / rel / "__init__.py", SRC.joinpath(*rel.parts[:-1], f"{rel.name}.py")):
        if rel.parts and cand.exists():
            return cand
    return SRC / "__init__.py" if name == "berth" else None


def _resolve(name: str) -> str | None:
    """The berth module an imported name is, or is in (`berth.errors.NotFound`: berth.errors)."""
    parts = name.split(".")
    while parts and _module_file(".".join(parts)) is None:
        parts.pop()
    return ".".join(parts) or None


def _import_graph(starts: list[str]) -> dict[str, str]:
    """Every berth module that importing `starts` can load, each with the module that imports
    it: static, so an import inside a function (one that runs later, or rarely) counts too,
    and every package above a module (its __init__ runs first)."""
    by: dict[str, str] = {}
    todo = [(s, "") for s in starts]
    while todo:
        mod, via = todo.pop()
        if mod in by:
            continue
        by[mod] = via
        parts = mod.split(".")
        todo += [(".".join(parts[:i]), mod) for i in range(1, len(parts))]
        path = _module_file(mod)
        assert path is not None, mod
        todo += [(r, mod) for n in _imports(path) if (r := _resolve(n))]
    return by


def test_the_daemon_s_import_graph_holds_no_runtime_code() -> None:
    """berthd reaches the shim only through `shim.launch`, which starts the fork server from
    a sealed copy of the interpreter (`memfd`, a leaf): no module of berthd's import graph,
    lazy imports included, is the runtime's or the shim processes' (shim.launch once took its
    sealed copy from runtime.sealed, which loaded the runtime package into berthd)."""
    daemon = [f"berth.daemon.{p.stem}" for p in (SRC / "daemon").glob("*.py")]
    graph = _import_graph([m.removesuffix(".__init__") for m in daemon])
    assert "berth.shim.launch" in graph and "berth.memfd" in graph
    bad = {m: via for m, via in graph.items() if m.startswith(SHIM_SIDE)}
    assert bad == {}, "imported by: " + ", ".join(f"{m} <- {v}" for m, v in bad.items())


def test_the_import_graph_sees_an_import_inside_a_function() -> None:
    """The graph's own check: a lazy import is an edge (a module the daemon imports at the
    first `run` is a module of the daemon)."""
    assert "berth.runtime.sealed" in _import_graph(["berth.runtime.cli"])  # lazily, in a def
    assert _import_graph(["berth.errors"]) == {"berth.errors": "", "berth": "berth.errors"}


def test_daemon_does_not_load_the_runtime() -> None:
    """Importing the daemon (and the container service) loads no module of the runtime or
    the monitor."""
    code = (
        "import sys, berth.daemon.main, berth.containers, berth.containers.execs\n"
        "print(sorted(n for n in sys.modules if n.startswith(('berth.runtime', "
        "'berth.shim.monitor', 'berth.shim.runtimes', 'berth.shim.stdio', "
        "'berth.shim.forkserver', 'berth.shim.host', 'berth.shim.held'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_fast_path_is_lean() -> None:
    code = (
        "import sys, berth.cli.main as m\n"
        "heavy = [n for n in ('aiohttp', 'asyncio', 'rich', 'yaml', 'berth.daemon', "
        "'berth.containers', 'http.client', 'dataclasses', 'typing', 'urllib.parse', "
        # each of these costs milliseconds: every command pays for them
        "'re', 'enum', 'json', 'socket', 'signal', 'threading', 'selectors', "
        # Go's templates: only a command given --format imports them
        "'berth.gotemplate') "
        "if n in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("command", "modules"),
    [
        ("ps", ["fmt", "main", "ps"]),
        ("exec", ["attach", "main"]),
        ("run", ["attach", "create", "createflags", "main", "runflags"]),
    ],
)
def test_cli_commands_load_only_their_module(command: str, modules: list[str]) -> None:
    """The command table loads one command group's module: `ps` does not pay for `run`'s flags
    nor the TTY handling, `exec` not for the create body."""
    code = (
        "import sys, berth.cli.main as m\n"
        f"m.load(m.COMMANDS[{command!r}])\n"
        "print(sorted(n.split('.')[-1] for n in sys.modules if n.startswith('berth.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(modules)


def test_template_package_is_lean() -> None:
    """berth.gotemplate is what a --format adds to a command's start-up: a few modules of its
    own (printf's verbs, JSON and the tabwriter come when first used) and nothing of the
    standard library's."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import berth.gotemplate\n"
        "print(sorted(n for n in set(sys.modules) - before if n != '__future__'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(
        ["berth"]
        + [f"berth.gotemplate{m}" for m in ("", ".evaluate", ".funcs", ".lex", ".parse", ".values")]
    )


def test_cli_launcher_is_ours() -> None:
    """The installed `berth` is bin/berth (pip's entry-point wrapper would import `re`)."""
    launcher = Path(sys.executable).parent / "berth"
    if launcher.exists():
        assert "import re" not in launcher.read_text()


def test_runtime_command_is_lean() -> None:
    """berth-runtime's `run` is one interpreter start-up and then its imports: what it
    imports is most of its own start-up. ctypes' package, libseccomp's module and `warnings`
    come only when a spec needs them."""
    code = (
        "import sys, berth.runtime.cli\n"
        "heavy = [n for n in ('argparse', 'json', 're', 'enum', 'dataclasses', 'typing', "
        "'socket', 'signal', 'shutil', 'contextlib', 'ctypes', 'ctypes.util', 'hashlib', "
        "'subprocess', 'runpy', 'warnings', 'berth.linux.seccomp', 'berth.oci.defaults', "
        "'berth.runtime.sealed', 'termios') if n in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path[:0] = [{str(SRC.parent)!r}]\n" + code,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
