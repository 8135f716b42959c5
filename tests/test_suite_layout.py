"""The suite runs as one pytest session over many folders without __init__.py files, so module
names must be unique across folders and nothing may import a folder's `conftest` by name (which
one `conftest` is depends on the collection order)."""
import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent
MODULES = [p for p in TESTS.rglob("*.py") if p.name != "conftest.py"]


def test_module_names_are_unique_across_folders():
    repeated = [name for name, n in Counter(p.stem for p in MODULES).items() if n > 1]
    assert not repeated, f"rename these test modules, pytest imports them by basename: {repeated}"


def test_no_module_imports_conftest_by_name():
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if "conftest" in names:
                offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert not offenders, f"import helpers from a named module instead of conftest: {offenders}"
