"""The code's shape, checked mechanically so that it cannot drift back (docs/architecture.md).

- No module over `MAX_LINES` lines in the project's packages (migrations aside): a module that
  grows past it is split by concern.
- No `import *`: every name a module uses can be found by searching for its import.
- No `_private` name (or `_private` module) imported or reached from another module of the project:
  what another module needs is public in its home, with a docstring.
- No import inside a function, except those in `FUNCTION_IMPORTS`, each with the reason it must run
  late (Django's app loading, a heavy or optional dependency loaded only when used, a package that
  must stay light to import). An import placed in a function to dodge an import cycle hides a layering
  problem; `.venv/bin/lint-imports` cannot see it either.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("onboarding", "sii_bot", "sii_sandbox", "portal", "benchmarks")
SIZE_LIMITED_PACKAGES = ("onboarding", "sii_bot", "sii_sandbox", "portal")
MAX_LINES = 700

_PLAYWRIGHT_LATE = "the web process imports sii_bot but never Playwright; only the browser thread loads it"
_DJANGO_LATE = "the benchmark configures Django at run time, so Django and the app load after django.setup()"

# (module file, imported top-level package) → why the import runs inside a function there.
FUNCTION_IMPORTS: dict[tuple[str, str], str] = {
    ("onboarding/apps.py", "onboarding"): "AppConfig.ready: the app's modules load once Django's registry is ready",
    ("onboarding/services/jobs/leases.py", "redis"): "the Redis client is needed only when REDIS_URL is set",
    ("portal/celery.py", "onboarding"): "the Celery app loads with the settings, before Django's apps are ready",
    ("sii_bot/browser.py", "playwright"): _PLAYWRIGHT_LATE,
    ("sii_bot/driver/controls.py", "playwright"): _PLAYWRIGHT_LATE,
    ("sii_bot/driver/records.py", "playwright"): _PLAYWRIGHT_LATE,
    ("sii_bot/engine.py", "playwright"): _PLAYWRIGHT_LATE,
    ("sii_sandbox/__init__.py", "sii_sandbox"): "`python -m sii_sandbox pki` and the pytest plugin load only what they use",
    ("benchmarks/common.py", "psycopg"): "PostgreSQL's driver is needed only for a PostgreSQL run",
    ("benchmarks/fairness.py", "django"): _DJANGO_LATE,
    ("benchmarks/fairness.py", "onboarding"): _DJANGO_LATE,
    ("benchmarks/fairness.py", "portal"): _DJANGO_LATE,
    ("benchmarks/portal.py", "django"): _DJANGO_LATE,
    ("benchmarks/portal.py", "onboarding"): _DJANGO_LATE,
    ("benchmarks/throughput.py", "django"): _DJANGO_LATE,
    ("benchmarks/throughput.py", "onboarding"): _DJANGO_LATE,
    ("benchmarks/throughput.py", "portal"): _DJANGO_LATE,
}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository, with "/"
    line: int
    target: str  # the imported module, absolute
    names: tuple[str, ...]  # the names taken from it (`from … import`), empty for `import …`
    function: int  # the line of the enclosing function's `def`, 0 at module level
    commented: bool  # a comment on the line or on the one above it


def _modules() -> list[Path]:
    paths = []
    for package in PROJECT_PACKAGES:
        paths.extend(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)
    return sorted(paths)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, function: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                commented = "#" in lines[child.lineno - 1] or lines[child.lineno - 2].strip().startswith("#")
                rel = path.relative_to(ROOT).as_posix()
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                        target = ".".join(base + ([child.module] if child.module else []))
                    else:
                        target = child.module or ""
                    found.append(Import(rel, child.lineno, target, tuple(a.name for a in child.names), function, commented))
                else:
                    for alias in child.names:
                        found.append(Import(rel, child.lineno, alias.name, (), function, commented))
            is_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, child.lineno if is_function else function)

    visit(tree, 0)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


ALL_IMPORTS = [imp for path in _modules() for imp in _imports(path)]


def test_no_module_is_over_the_line_limit() -> None:
    too_long = []
    for package in SIZE_LIMITED_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            count = len(path.read_text(encoding="utf-8").splitlines())
            if count > MAX_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: {count} lines")
    assert not too_long, f"split these modules by concern (limit {MAX_LINES} lines): {too_long}"


def test_no_star_imports() -> None:
    stars = [f"{imp.path}:{imp.line}" for imp in ALL_IMPORTS if "*" in imp.names]
    assert not stars, f"import the names you use: {stars}"


def test_no_private_name_crosses_a_module() -> None:
    crossing = []
    for imp in ALL_IMPORTS:
        if imp.target.split(".")[0] not in PROJECT_PACKAGES:
            continue
        private_parts = [part for part in imp.target.split(".") if _private(part)]
        private_names = [name for name in imp.names if _private(name)]
        if private_parts or private_names:
            crossing.append(f"{imp.path}:{imp.line} {imp.target} {private_parts + private_names}")
    assert not crossing, f"make these public in their home (with a docstring) or move them: {crossing}"


def test_no_private_attribute_of_another_project_module() -> None:
    """`module._name` where `module` is an imported project module is the same leak as importing it."""
    reached = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(
                    (a.asname or a.name.split(".")[0]) for a in node.names if a.name.split(".")[0] in PROJECT_PACKAGES
                )
            elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in PROJECT_PACKAGES):
                modules.update(a.asname or a.name for a in node.names if a.name.islower())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and _private(node.attr)
            ):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not reached, f"make these public in their home or move them: {reached}"


def test_function_level_imports_are_on_the_allow_list() -> None:
    late = [imp for imp in ALL_IMPORTS if imp.function]
    unexplained = sorted(
        {f"{imp.path}:{imp.line} {imp.target}" for imp in late if (imp.path, imp.target.split(".")[0]) not in FUNCTION_IMPORTS}
    )
    assert not unexplained, f"hoist these to the module's top (or list them with a real reason): {unexplained}"


def test_each_allowed_function_level_import_says_why_in_the_code() -> None:
    """The first import of each function carries a one-line comment (on it, or on the line above), so the
    reader of the function sees the reason without opening this test."""
    silent = []
    seen: set[tuple[str, int]] = set()
    for imp in ALL_IMPORTS:
        if not imp.function:
            continue
        if (imp.path, imp.function) not in seen and not imp.commented:
            silent.append(f"{imp.path}:{imp.line} {imp.target}")
        seen.add((imp.path, imp.function))
    assert not silent, f"say in a comment why these imports run late: {silent}"


@pytest.mark.parametrize("key", sorted(FUNCTION_IMPORTS))
def test_allow_list_entries_are_still_needed(key: tuple[str, str]) -> None:
    """An entry no import uses any more is removed, so the list stays the list of real exceptions."""
    assert any(imp.function and (imp.path, imp.target.split(".")[0]) == key for imp in ALL_IMPORTS), key
