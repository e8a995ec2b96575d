"""The layout docs/architecture.md describes: `defs/` holds what Dagster loads, nothing outside it imports
from it, and each stage folder builds its definitions the same way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import dagster as dg

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_assets"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_outside_defs_imports_from_defs():
    outside = [p for p in PACKAGE.rglob("*.py") if "defs" not in p.relative_to(PACKAGE).parts]
    offenders = {
        str(p.relative_to(PACKAGE.parent)): sorted(
            m for m in imported_modules(p) if m.startswith("mlops_assets.defs")
        )
        for p in outside
        if p.name != "definitions.py" or p.parent != PACKAGE
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_each_stage_builds_its_definitions_from_the_settings_alone():
    from mlops_assets.defs import STAGES
    from mlops_assets.lib.settings import load_settings

    settings = load_settings({"MLOPS_HOME": "/tmp/mlops-layout-test"})
    folders = sorted(p.name for p in (PACKAGE / "defs").iterdir() if (p / "definitions.py").exists())
    assert sorted(STAGES) == folders
    for stage in STAGES:
        built = importlib.import_module(f"mlops_assets.defs.{stage}.definitions").build_definitions(settings)
        assert isinstance(built, dg.Definitions), stage
        # Resources come from resources/profiles.py only: one place picks them per profile.
        assert not built.resources, f"{stage} defines resources {sorted(built.resources)}"


def test_no_stage_module_is_a_grab_bag():
    """A module under defs/ or beside it stays small enough to read in one sitting."""
    too_long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert too_long == {}
