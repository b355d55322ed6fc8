"""metarec_core never imports streamlit: statically (AST of every module) and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "metarec_core"


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_no_core_module_imports_streamlit_in_its_source():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 10  # the scan really sees the package
    offenders = {
        str(f.relative_to(CORE)): sorted(
            m for m in imported_modules(f) if m.split(".")[0] == "streamlit"
        )
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_would_catch_an_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from streamlit import session_state\n")
    assert "streamlit" in imported_modules(bad)


def test_importing_every_core_module_loads_no_streamlit():
    names = sorted(
        ".".join(("metarec_core", *f.relative_to(CORE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for f in CORE.rglob("*.py")
        if f.stem != "__main__"
    )
    assert "metarec_core.methods.meta" in names  # sub-packages are scanned too
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=CORE.parent, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
