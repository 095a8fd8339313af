"""The package's import graph, read from the source: no cycles, and the layers point one way.

Imports inside functions count: a cycle hidden in a function body is still a cycle. The
Keras-free modules are checked by importing them in a fresh interpreter."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cremad"
# The run-folder package is storage: what trains or schedules folds may use it, never the reverse.
FORBIDDEN = {
    "cremad.runs": ("cremad.training", "cremad.folds", "cremad.loso", "cremad.models", "cremad.selection"),
    "cremad.splits": ("cremad.training", "cremad.folds", "cremad.loso", "cremad.models", "cremad.runs"),
    "cremad.scaling": ("cremad.training", "cremad.folds", "cremad.loso", "cremad.models", "cremad.runs"),
    "cremad.model_names": ("cremad.",),
    "cremad.config": ("cremad.models", "cremad.training", "cremad.folds"),
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the cremad modules it imports anywhere in its source (top level or in functions)."""
    paths = {module_name(path, package): path for path in package.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from .files import y
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)  # from cremad import runs
        graph[name] = {target for target in targets if target in paths and target not in (name, "cremad")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_reader_sees_cycles_and_imports_inside_functions(tmp_path):
    package = tmp_path / "cremad"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cremad.b import thing\n")
    (package / "b.py").write_text("def later():\n    from cremad import a\n")
    (package / "c.py").write_text("from cremad import a\n")
    graph = import_graph(package)
    assert graph == {
        "cremad": set(),
        "cremad.a": {"cremad.b"},
        "cremad.b": {"cremad.a"},
        "cremad.c": {"cremad.a"},
    }
    assert find_cycle(graph) == ["cremad.a", "cremad.b", "cremad.a"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_cremad_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_in_one_direction(layer):
    graph = import_graph()
    offending = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == layer or module.startswith(f"{layer}.")
        for target in targets
        if target.startswith(FORBIDDEN[layer]) and not target.startswith(layer)
    }
    assert not offending, sorted(offending)


def test_tables_figures_and_metrics_load_no_keras():
    """Reading saved runs never pays for TensorFlow: these modules import without Keras."""
    modules = [
        "cremad.metrics", "cremad.figures", "cremad.perception", "cremad.runs", "cremad.splits",
        "cremad.scaling", "cremad.model_names", "cremad.config", "cremad.baseline", "cremad.cli",
        "cremad.report",
    ]  # fmt: skip
    code = (
        f"import sys; import {', '.join(modules)}; "
        "loaded = sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules); "
        "print(','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent)  # fmt: skip
    assert result.stdout.strip() == "", f"imported {result.stdout.strip()}"
