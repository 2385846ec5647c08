"""docs/redshift.md stays true: it matches a fresh recording, and every statement on it passes the
Redshift twin's guard (scripts/record_redshift_sql.py writes it)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests import redshift_twin
from tests.conftest import ROOT

DOC = ROOT / "docs" / "redshift.md"
COMMANDS = (
    "init-db", "monitor", "exceptions", "resolve", "repair-reactivated", "backfill", "vacuum", "doctor",
)  # fmt: skip


def _statements(markdown: str) -> dict[str, list[str]]:
    """SQL statements per ``## `command` `` section (comment lines dropped)."""
    sections: dict[str, list[str]] = {}
    for title, body in re.findall(r"^## `([\w-]+)`\n\n```sql\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL):
        statements, current = [], []
        for line in body.splitlines():
            if line.startswith("--"):
                continue
            current.append(line)
            if line.endswith(";"):
                statements.append("\n".join(current)[:-1])
                current = []
        assert not current, f"{title}: unterminated statement {current}"
        sections[title] = statements
    return sections


def test_every_statement_on_the_page_passes_the_guard() -> None:
    sections = _statements(DOC.read_text(encoding="utf-8"))
    assert tuple(sections) == COMMANDS
    for command, statements in sections.items():
        assert statements, command
        for sql in statements:
            assert redshift_twin.refusal(sql) is None, (command, sql[:200])
    assert any(s.startswith("VACUUM DELETE ONLY") for s in sections["vacuum"])
    assert not any("INDEX" in s or "nextval" in s for s in sections["init-db"] + sections["vacuum"])


def test_the_page_matches_a_fresh_recording() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/record_redshift_sql.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
