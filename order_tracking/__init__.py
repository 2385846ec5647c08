"""Order Tracking data quality & vacuum: the domain core shared by the DAGs, the CLI and GX."""

from __future__ import annotations

DISTRIBUTION = "order-tracking-dq"  # the name in pyproject.toml and in an install's metadata


def package_version() -> str:
    """This code's version: pyproject.toml's when it runs from a checkout, else the installed
    distribution's metadata ("unknown" when neither is there).

    The checkout comes first because a wheel installed in the same venv would otherwise speak for
    code it did not ship. Read on demand, not at import: every module imports this package.
    """
    import tomllib
    from importlib import metadata
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as f:
            project = tomllib.load(f).get("project", {})
        if project.get("name") == DISTRIBUTION and project.get("version"):
            return str(project["version"])
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def __getattr__(name: str) -> str:
    # ``order_tracking.__version__`` keeps working, computed only when asked for (PEP 562).
    if name == "__version__":
        return package_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
