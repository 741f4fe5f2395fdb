"""The engine's import graph: no cycle anywhere in fairlin_core (imports inside functions count too); the dashboard
(app.py, pages/, ui/) imports the names each wing's ``__init__`` exports, never the modules behind them."""

import ast
import importlib
import pkgutil
import re
import tomllib
from pathlib import Path

import grimp


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_in_the_engine():
    assert _cycles(grimp.build_graph("fairlin_core")) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(module):
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[module]
    assert _cycles(Graph()) == [["a", "b"]]


def test_the_engine_never_imports_the_dashboard():
    graph = grimp.build_graph("fairlin_core", "ui", "streamlit")
    for module in graph.modules:
        if module.startswith("fairlin_core"):
            imported = graph.find_modules_directly_imported_by(module)
            assert not any(m.split(".")[0] in {"ui", "streamlit"} for m in imported), module



ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_FILES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])


def _deep_imports(path: Path) -> list[str]:
    """The imports in ``path`` that reach past a wing's ``__init__``: ``fairlin_core.a.b`` modules, and names
    a wing (package) does not list in its ``__all__`` (its submodules among them)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("fairlin_core.") and a.name.count(".") > 1]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fairlin_core":
            if node.module.count(".") > 1:
                found.append(node.module)
                continue
            module = importlib.import_module(node.module)
            if node.module == "fairlin_core":  # the notebook names, or a wing itself
                public = set(module.__all__) | {m.name for m in pkgutil.iter_modules(module.__path__) if m.ispkg}
            elif hasattr(module, "__path__"):  # a wing: its __all__ only
                public = set(getattr(module, "__all__", ()))
            else:  # a top-level module (errors, runtime, ...): its public names
                public = {name for name in vars(module) if not name.startswith("_")}
            found += [f"{node.module}.{a.name}" for a in node.names if a.name not in public]
    return found


def test_the_dashboard_imports_wing_level_names_only():
    assert len(DASHBOARD_FILES) > 10
    deep = {str(path.relative_to(ROOT)): _deep_imports(path) for path in DASHBOARD_FILES}
    assert {name: imports for name, imports in deep.items() if imports} == {}


def test_the_deep_import_check_finds_deep_imports(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("from fairlin_core.jobs.ray_executor import ADDRESS_ENV\nfrom fairlin_core.viz import tables\n"
                    "import fairlin_core.data.registry\nfrom fairlin_core.jobs import ADDRESS_ENV, get_manager\n"
                    "from fairlin_core import viz, linearize\nfrom fairlin_core.errors import FairLinError\n")
    assert sorted(_deep_imports(page)) == ["fairlin_core.data.registry", "fairlin_core.jobs.ray_executor",
                                           "fairlin_core.viz.tables"]


def test_the_layers_contract_names_a_section_the_repository_holds():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    where = re.fullmatch(r"Engine layers \((?P<file>[^,]+), (?P<section>[^)]+)\): .*", contract["name"])
    assert where, contract["name"]
    assert f"\n## {where['section']}\n" in (ROOT / where["file"]).read_text()
