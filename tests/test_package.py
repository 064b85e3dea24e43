"""The package's promises: its public names, its packaged data, its documented commands."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import wattwise
from wattwise.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = (
    "country_intensity.csv",
    "cpu_tdp.csv",
    "cloud_regions.csv",
    "cloud_providers.csv",
    "grid_zones.csv",
    "water_intensity.csv",
    "SOURCES.md",
)


def test_all_lists_exactly_the_public_names() -> None:
    for name in wattwise.__all__:
        assert getattr(wattwise, name) is not None, name
    assert sorted(wattwise.__all__) == wattwise.__all__
    assert sorted(dir(wattwise)) == sorted(wattwise.__all__)


def test_import_is_light() -> None:
    code = "import sys, wattwise; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    for heavy in ("pandas", "numpy", "torch", "rich", "pynvml", "sqlite3", "httpx", "jinja2", "starlette"):
        assert heavy not in loaded, f"`import wattwise` loads {heavy}"


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd_parser in sub.choices.items():  # type: ignore[union-attr]
        assert f"wattwise {name}" in readme, name
        for action in cmd_parser._actions:
            if action.dest == "runs_command":
                for sub_name in action.choices:
                    assert f"wattwise {name} {sub_name}" in readme, sub_name
            for flag in action.option_strings:
                if flag.startswith("--") and flag not in {"--help"}:
                    assert flag in readme or name == "runs", f"wattwise {name} {flag} is not in README.md"


def test_sources_name_every_data_file() -> None:
    data_dir = ROOT / "src" / "wattwise" / "data"
    sources = (data_dir / "SOURCES.md").read_text()
    for path in data_dir.iterdir():
        if path.suffix in {".csv", ".json"}:
            assert f"## {path.name}" in sources, f"{path.name} has no section in SOURCES.md"


@pytest.mark.slow
def test_data_files_ship_in_the_wheel(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("wattwise-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for data in DATA_FILES:
        assert f"wattwise/data/{data}" in names
    assert "wattwise/py.typed" in names
    for template in ("base.html", "run.html", "compare.html", "runs.html", "pareto.html", "plan.html"):
        assert f"wattwise/report/templates/{template}" in names
    assert not [n for n in names if re.match(r"tests/", n)]
