"""The package's shape: imports flow one way, every command's help works, bugs are not user errors."""

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nisqdiff.cli import app

PACKAGE = Path(__file__).resolve().parents[1] / "nisqdiff"


def _import_graph() -> dict[str, set[str]]:
    """Module -> nisqdiff modules it imports (module level and inside functions), from the source."""
    mods = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}  # fmt: skip
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                # a package and its own children (re-exports) are one unit, as is the top-level package
                if t and t != m and not m.startswith(t + ".") and not t.startswith(m + ".") and t != "nisqdiff":
                    graph[m].add(t)
    return graph


def test_the_import_graph_has_no_circle():
    graph = _import_graph()
    assert "nisqdiff.pipeline" in graph and "nisqdiff.devices.factory" in graph
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in graph[m]:
            assert state.get(t) != 1, f"import circle: {' -> '.join(path + [t])}"
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_lower_layers_do_not_import_upper_ones():
    graph = _import_graph()
    upper = {"nisqdiff.cli", "nisqdiff.study", "nisqdiff.report", "nisqdiff.pipeline", "nisqdiff.checkpoints",
             "nisqdiff.training", "nisqdiff.device_runs"}  # fmt: skip
    for m, targets in graph.items():
        if m.startswith(("nisqdiff.devices", "nisqdiff.circuits", "nisqdiff.models", "nisqdiff.calibration")):
            assert not targets & upper, (m, targets & upper)


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_help_works():
    import typer.main

    commands = list(_commands(typer.main.get_command(app)))
    assert ("devices", "inspect") in commands and ("calibration", "pull") in commands and len(commands) >= 11
    for command in [(), *commands]:
        res = CliRunner().invoke(app, [*command, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, (command, res.output)


def test_a_bug_is_reported_as_a_bug_with_its_traceback(monkeypatch, tmp_path):
    def broken(name):
        raise TypeError("an honest bug")

    monkeypatch.setattr("nisqdiff.models.arch_summary", broken)
    res = CliRunner().invoke(app, ["archs"])
    assert res.exit_code == 1 and "nisqdiff hit a bug (TypeError: an honest bug)" in res.output
    crash = Path(res.output.split("the traceback is in ")[1].split(";")[0])
    assert crash.is_relative_to(tmp_path) and "Traceback" in crash.read_text() and "an honest bug" in crash.read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--arch", "9hqconv"], "unknown architecture '9hqconv'"),
        (["sample", "--checkpoint", "nowhere.pt"], "checkpoint nowhere.pt does not exist"),
        (["sample"], "--checkpoint is required"),
        (["report", "--devices", "warp:9"], "unknown device kind 'warp'"),
        (["report", "--render", "nowhere"], "holds no study.json"),
        (["evaluate", "--samples", "nowhere.pt"], "samples file nowhere.pt does not exist"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert "Traceback" not in res.output
