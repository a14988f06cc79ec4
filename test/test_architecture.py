"""The shape of the library (docs/architecture.md): no import circles, short modules, one
recipe per frame (the tracker drives no estimator stage), no continuity rules in the node."""

import ast
from pathlib import Path

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "hand_mesh_ros"
MAX_MODULE_LINES = 450
LONG_MODULES_ALLOWED = {"training/losses.py"}  # the paper's losses, kept whole (cohesive)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules imported by ``path`` anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        # a module's own parent packages are loaded before it anyway: not an edge
        graph[name] = {t for t in _imports(path, set(paths)) if not name.startswith(t + ".")}
        graph[name].discard(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circles():
    graph = _import_graph()
    assert "hand_mesh_ros.pipeline.tracker" in graph
    assert "hand_mesh_ros.pipeline.estimator" in graph["hand_mesh_ros.pipeline.tracker"]
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_modules_are_short():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert set(long) <= LONG_MODULES_ALLOWED, long


def _attribute_calls(path: Path, owner: str) -> set[str]:
    """Names of methods called on ``self.<owner>`` (or a local bound to it) in ``path``."""
    calls = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if isinstance(target, ast.Attribute) and target.attr == owner:
                calls.add(node.func.attr)
    return calls


def test_the_tracker_only_detects_and_estimates():
    """Per-frame evidence (2D hands, the side the depth shows) and fits come from the
    estimator; the tracker adds only continuity."""
    calls = _attribute_calls(PACKAGE / "pipeline" / "tracker.py", "estimator")
    assert calls == {"detect", "sides_from_depth", "estimate"}


def test_the_node_keeps_no_continuity_rules():
    source = (PACKAGE / "ros" / "node.py").read_text()
    for rule in ("track_timeout_s", "max_missed_frames", "_last_input", ".reset()"):
        assert rule not in source, f"node.py handles continuity itself ({rule})"
    calls = _attribute_calls(PACKAGE / "ros" / "node.py", "_tracker")
    assert calls <= {"update", "detect", "fit", "reject_last"}  # detect + fit: two stages
