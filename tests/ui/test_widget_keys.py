"""Widget and session keys carry the prefix of the file that owns them: ``<page>.`` in pages/<page>.py,
``<module>.`` in ui/<module>.py and ``sidebar.`` in app.py, so no two pages can share a key by accident."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])
PAGES = {path.stem for path in (ROOT / "pages").glob("*.py")}


def _prefix(path: Path) -> str:
    return "sidebar" if path.name == "app.py" else path.stem


def _head(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The text a key expression starts with: a string, an f-string's leading text, or a module constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _keys(path: Path) -> tuple[list[str], list[str]]:
    """(``key=`` arguments, strings used as st.session_state keys) in ``path``, by their leading text."""
    tree = ast.parse(path.read_text(), str(path))
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}
    widgets, session = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "key" and (head := _head(node.value, constants)) is not None:
            widgets.append(head)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("session_state"):
            session.append(_head(node.slice, constants))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and ast.unparse(node.func.value).endswith("session_state"):
            if node.func.attr == "update":  # update({"a.b": ...}) or update(a_b=...)
                session += [_head(k, constants) for arg in node.args if isinstance(arg, ast.Dict) for k in arg.keys]
                session += [keyword.arg for keyword in node.keywords]
            elif node.args:  # get, setdefault, pop
                session.append(_head(node.args[0], constants))
    return widgets, [key for key in session if key is not None]


def test_every_key_starts_with_the_prefix_of_its_file():
    wrong, counted = {}, 0
    for path in FILES:
        widgets, session = _keys(path)
        counted += len(widgets)
        own = _prefix(path) + "."
        readable = (own, *(page + "." for page in PAGES))  # ui/ may read a page's widget (jobs panel: executor)
        bad = [k for k in widgets if not k.startswith(own)] + [k for k in session if not k.startswith(readable)]
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert counted > 100 and wrong == {}


def test_the_key_check_sees_unprefixed_keys(tmp_path):
    page = tmp_path / "audit.py"
    page.write_text('import streamlit as st\nJOB = "audit.job"\nst.radio("x", [1], key="split")\n'
                    'st.slider("y", key=f"seed_{1}")\nst.button("z", key="audit.go")\nst.session_state.get(JOB)\n'
                    'st.session_state["budget"] = 1\nst.session_state.update(audit_method=1)\nsorted([], key=len)\n')
    widgets, session = _keys(page)
    assert widgets == ["split", "seed_", "audit.go"] and sorted(session) == ["audit.job", "audit_method", "budget"]
