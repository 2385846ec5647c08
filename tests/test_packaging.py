"""The front door: the wheel, the ``order-tracking`` command, and the MWAA runtime requirements.

The wheel is built from a copy of the files a build reads (so the checkout gets no ``build/`` or
``*.egg-info``), with a version of its own: the installed command must report its metadata's
version, not the checkout's. It is installed with ``--no-deps`` into a fresh venv that sees the
project venv's pinned packages through a ``.pth`` file, and run from outside the checkout.

The MWAA check (marker ``pypi``, about a minute, ``make mwaa-check``) resolves
``requirements-runtime.txt`` together with the pinned ``apache-airflow`` from PyPI in a clean venv
(``pip install --dry-run --report``). Airflow's published constraints file lives on GitHub, which
this machine cannot reach, so that stricter check is not made here (README, "Deploying to Amazon
MWAA").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from order_tracking import DISTRIBUTION, cli

ROOT = Path(__file__).resolve().parent.parent
# What a wheel build reads: pyproject.toml names README.md (readme), LICENSE (found by setuptools),
# requirements-runtime.txt (the dependencies) and the three folders it packages.
BUILD_INPUTS = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "requirements-runtime.txt",
    "order_tracking",
    "expectations_custom",
    "vendor",
)
WHEEL_VERSION_SUFFIX = ".post7"


def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


def _run(cmd: list[str], *, cwd: Path, timeout: float = 120, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, (
        f"{cmd[:4]} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _clean_env() -> dict[str, str]:
    """The environment without anything that would put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pip(*args: str) -> list[str]:
    # The project venv's pip, aimed at other venvs with --python: the fresh venvs need no pip.
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (no deps); returns its python."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    version = _project()["version"]
    pyproject = src / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert f'version = "{version}"' in text
    pyproject.write_text(
        text.replace(f'version = "{version}"', f'version = "{version}{WHEEL_VERSION_SUFFIX}"', 1),
        encoding="utf-8",
    )

    dist = base / "dist"
    _run(_pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)), cwd=base)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=base,
            env=_clean_env(),
        ).strip()
    )
    # The pinned dependencies, visible without installing them again (after the venv's own dir).
    (site / "project_venv_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run(_pip("--python", str(python), "install", "-q", "--no-deps", str(wheels[0])), cwd=base)
    return python


def test_console_script_reports_the_installed_version(installed: Path) -> None:
    outside = installed.parent.parent.parent  # the temporary folder, not the checkout
    out = _run([str(installed.parent / "order-tracking"), "--version"], cwd=outside, env=_clean_env())
    assert out.strip() == f"{DISTRIBUTION} {_project()['version']}{WHEEL_VERSION_SUFFIX}"


def test_console_script_help_lists_the_commands(installed: Path) -> None:
    outside = installed.parent.parent.parent
    out = _run([str(installed.parent / "order-tracking"), "--help"], cwd=outside, env=_clean_env())
    for command in ("monitor", "exceptions", "vacuum", "doctor", "airflow-setup"):
        assert command in out
    assert "--version" in out


def test_installed_code_and_data_come_from_the_install(installed: Path) -> None:
    """The packages import from the venv, not the checkout, and the offline Data Docs find the
    vendored CSS/JS that the wheel ships beside them."""
    probe = (
        "import json, expectations_custom, order_tracking\n"
        "from order_tracking.reports import data_docs_offline as d\n"
        "print(json.dumps([order_tracking.__file__, expectations_custom.__file__, str(d.VENDOR_DIR),"
        " (d.VENDOR_DIR / d.VERSIONS_FILE).is_file(), len(d.vendored_assets())]))"
    )
    outside = installed.parent.parent.parent
    ot, ec, vendor, versions_file, assets = json.loads(
        _run([str(installed), "-c", probe], cwd=outside, env=_clean_env())
    )
    venv = installed.parent.parent
    for path in (ot, ec, vendor):
        assert Path(path).is_relative_to(venv), path
        assert not Path(path).is_relative_to(ROOT), path
    assert versions_file
    shipped = [p for p in (ROOT / "vendor" / "data_docs").rglob("*") if p.is_file()]
    assert assets == len(shipped)


def test_version_from_a_checkout_is_pyprojects(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"{DISTRIBUTION} {_project()['version']}"


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a requirements file's ``name==version`` lines (names normalised)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s#;]+).*", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(3)
    return pins


def test_runtime_requirements_leave_out_airflow_and_dev_tools() -> None:
    runtime = _pins(ROOT / "requirements-runtime.txt")
    assert "apache-airflow" not in runtime
    for dev_tool in _pins(ROOT / "requirements-dev.txt"):
        assert dev_tool not in runtime
    # requirements.txt keeps the local set: the runtime file plus Airflow itself.
    local = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "-r requirements-runtime.txt" in local.splitlines()
    assert "apache-airflow" in _pins(ROOT / "requirements.txt")
    # The same versions as the frozen, tested set.
    frozen = _pins(ROOT / "constraints.txt")
    assert {name: frozen.get(name) for name in runtime} == runtime


@pytest.mark.pypi
def test_runtime_requirements_resolve_with_the_pinned_airflow(tmp_path: Path) -> None:
    """MWAA installs requirements-runtime.txt next to its Airflow: the two must resolve together.

    Against PyPI only (no published Airflow constraints here, see the module docstring); about a
    minute with a warm pip cache, mostly the resolver's own work.
    """
    airflow = _pins(ROOT / "requirements.txt")["apache-airflow"]
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    report = tmp_path / "report.json"
    _run(
        _pip(
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-r",
            str(ROOT / "requirements-runtime.txt"),
            f"apache-airflow=={airflow}",
        ),
        cwd=tmp_path,
        timeout=300,
    )
    resolved = {
        re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]
    }
    wanted = {**_pins(ROOT / "requirements-runtime.txt"), "apache-airflow": airflow}
    assert {name: resolved.get(name) for name in wanted} == wanted
