"""The core imports no chat platform: adapters depend on it, never the other way round."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "bot" / "core"
PLATFORMS = {"discord", "nio"}


def test_no_core_module_imports_a_platform() -> None:
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in PLATFORMS, f"{path.name} imports {name}"


def test_importing_the_core_loads_no_platform() -> None:
    code = (
        "import sys, bot.core.brain, bot.core.retention, bot.core.chart, bot.core.store; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('discord', 'nio')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
