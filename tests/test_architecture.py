"""The import direction (README, "Architecture"), checked on the source itself.

Apps sit in layers and import only from lower layers (siblings on one layer not at all)::

    accounts ← notifications ← wallets ← creators ← gifts ← (payouts, memberships, moderation)
             ← staff

``config`` (settings, URLs, the API's plumbing) is for everyone. The staff console sits on
top and no app imports it: the audit log and the role checks every service needs live in
``accounts`` (``accounts.audit``, ``accounts.roles``). Every import counts, including those
inside functions. Tests are exempt (a money app's tests may drive the console that shows it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYER = {
    "accounts": 0,
    "notifications": 1,
    "wallets": 2,
    "creators": 3,
    "gifts": 4,
    "payouts": 5,
    "memberships": 5,
    "moderation": 5,
    "staff": 9,
}
TOP = "staff"


def _apps() -> list[str]:
    """Every Django app of ours (a folder with apps.py), the layered ones and any newer one."""
    return sorted(p.parent.name for p in ROOT.glob("*/apps.py"))


def _source_files(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        parts = path.relative_to(ROOT / app).parts
        if parts[0] in ("tests", "migrations"):
            continue
        yield path


def _imports(path: Path):
    """(line, imported app) of every absolute import of one of our apps in ``path``."""
    apps = set(_apps())
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in apps:
                yield node.lineno, top


def _violations(app: str) -> list[str]:
    problems = []
    for path in _source_files(app):
        where = path.relative_to(ROOT)
        for line, imported in _imports(path):
            if imported == app:
                continue
            if imported == TOP:
                problems.append(f"{where}:{line} imports {TOP} (the top: nothing imports it)")
            elif app in LAYER and imported in LAYER and LAYER[imported] >= LAYER[app]:
                problems.append(
                    f"{where}:{line}: {app} (layer {LAYER[app]}) imports {imported} "
                    f"(layer {LAYER[imported]}): imports only go down"
                )
    return problems


def test_no_app_imports_staff_or_an_app_above_it():
    problems = [p for app in _apps() if app != TOP for p in _violations(app)]
    assert problems == []


def test_every_layered_app_exists():
    # A renamed app would silently leave the check above.
    assert set(LAYER) <= set(_apps())


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The walker itself: an import inside a function, from a lower app, is caught."""
    fake = tmp_path / "wallets"
    fake.mkdir()
    (fake / "apps.py").write_text("")
    (fake / "admin.py").write_text("def f():\n    from staff.services import x\n    import gifts\n")
    for app in ("staff", "gifts"):
        (tmp_path / app).mkdir()
        (tmp_path / app / "apps.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _violations("wallets")
    assert len(found) == 2
    assert "imports staff" in found[0]
    assert "imports gifts" in found[1]


def test_nothing_below_staff_fails_open_on_a_missing_import():
    """``except ImportError`` around a role or audit import made the finance check pass when
    the import failed; nothing below the console catches ImportError at all now."""
    problems = []
    for app in _apps():
        if app == TOP:
            continue
        for path in _source_files(app):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ExceptHandler) and "ImportError" in ast.unparse(
                    node.type or ast.Name("")
                ):
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert problems == []
