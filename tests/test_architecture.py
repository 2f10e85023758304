"""The house: imports run one way between the layers, and the live path never leans on the research path."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# each layer may import the ones before it (DESIGN.md: utils <- database <- data <- models <- ...)
LAYERS = ["src.utils", "src.database", "src.data", "src.models", "src.notifications|src.monitoring|src.web",
          "src.scheduler", "src.cli|src.main"]
MODEL_ROOMS = ["src.models.evaluation", "src.models.estimators", "src.models.live", "src.models.offline"]


def _rank(module: str, order: list[str]) -> int | None:
    for rank, names in enumerate(order):
        if any(module == name or module.startswith(name + ".") for name in names.split("|")):
            return rank
    return None


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported src module) for every import in src/, lazy ones included."""
    pairs = []
    for path in (ROOT / "src").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
                pairs.append((module, node.module))
            elif isinstance(node, ast.Import):
                pairs += [(module, alias.name) for alias in node.names if alias.name.startswith("src")]
    return pairs


def test_imports_run_down_the_layers():
    upward = [(a, b) for a, b in _imports()
              if _rank(a, LAYERS) is not None and _rank(b, LAYERS) is not None and _rank(b, LAYERS) > _rank(a, LAYERS)]
    assert upward == []


def test_models_rooms_import_one_way_and_live_never_imports_offline():
    """evaluation <- estimators <- live <- offline: what the live path depends on is read off the tree."""
    upward = [(a, b) for a, b in _imports() if _rank(a, MODEL_ROOMS) is not None and _rank(b, MODEL_ROOMS)
              is not None and _rank(b, MODEL_ROOMS) > _rank(a, MODEL_ROOMS)]
    assert upward == []


@pytest.mark.host_tz
def test_the_live_cycle_loads_nothing_of_the_research_path():
    code = ("import sys\nimport src.models.live.prediction, src.models.live.outcomes, src.models.live.performance\n"
            "import src.models.live.registry\nprint(sorted(m for m in sys.modules if 'offline' in m))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
