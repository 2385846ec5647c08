"""More of what Redshift refuses, for the twin's guard (issue 24 section 4); tests/redshift_twin.py
turns each entry into a ``Rule``. Every entry cites its Developer Guide page and carries an example
the guard's tests run.

- ``LATERAL``: the FROM clause has no LATERAL (Redshift unnests SUPER arrays its own way);
- ``UUID`` / ``JSON`` / ``JSONB`` columns and casts: unsupported data types;
- leader-node-only date functions (NOW, AGE, ISFINITE, CURRENT_TIME/TIMESTAMP, LOCALTIME[STAMP])
  in a statement that reads a table: Redshift refuses them there ("Function ... not supported on
  Redshift tables"). CURRENT_DATE is refused with them, as issue 24 asks, to keep filters on
  the caller's clock (the product passes ``as_of`` as a parameter);
- skip-level correlated subqueries: a subquery that refers to a table two or more query levels
  up (:class:`SkipLevelCorrelation` finds them by scope, not by a regular expression).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DG = "https://docs.aws.amazon.com/redshift/latest/dg/"
FROM = ("FROM clause (syntax: no TABLESAMPLE)", _DG + "r_FROM_clause30.html")
DATATYPES = ("Unsupported PostgreSQL data types", _DG + "c_unsupported-postgresql-datatypes.html")
LEADER_ONLY = ("Leader node-only functions", _DG + "c_SQL_functions_leader_node_only.html")
CORRELATED = ("Correlated subqueries (no skip-level correlation)", _DG + "r_correlated_subqueries.html")

_SELECT = re.compile(r"\(\s*SELECT\b", re.IGNORECASE)
_KEYWORDS = r"ON|WHERE|JOIN|GROUP|ORDER|LEFT|RIGHT|INNER|FULL|CROSS|LIMIT|UNION"
_ALIAS = re.compile(
    rf"\b(?:FROM|JOIN)\s+([\w.\"]+)(?:\s+(?:AS\s+)?(?!(?:{_KEYWORDS})\b)(\w+))?", re.IGNORECASE
)
_QUALIFIED = re.compile(r"\b([A-Za-z_]\w*)\.[A-Za-z_\"]")


@dataclass
class _Scope:
    parent: int | None
    text: list[str]


def _scopes(code: str) -> list[_Scope]:
    """The query levels of ``code``: each ``(SELECT ...)`` opens one; other parentheses (function
    calls, IN lists) belong to the level they are in."""
    scopes, stack, level_of_paren = [_Scope(None, [])], [0], []
    i = 0
    while i < len(code):
        ch = code[i]
        if ch == "(":
            if _SELECT.match(code, i):
                scopes.append(_Scope(stack[-1], []))
                stack.append(len(scopes) - 1)
                level_of_paren.append(True)
            else:
                level_of_paren.append(False)
        elif ch == ")" and level_of_paren and level_of_paren.pop():
            stack.pop()
        scopes[stack[-1]].text.append(ch)
        i += 1
    return scopes


_DERIVED = re.compile(r"\)\s*(?:AS\s+)?([A-Za-z_]\w*)", re.IGNORECASE)


def _names(text: str) -> set[str]:
    """Tables and aliases a query level defines (a table's last name part counts too, and the
    alias after a derived table's closing parenthesis)."""
    names = {a.lower() for a in _DERIVED.findall(text)}
    for table, alias in _ALIAS.findall(text):
        names.add(table.replace('"', "").rsplit(".", 1)[-1].lower())
        if alias:
            names.add(alias.lower())
    return names


class SkipLevelCorrelation:
    """A ``pattern``-like matcher: ``search(code)`` is truthy when some query level refers to a
    name defined two or more levels up and not in between."""

    def search(self, code: str) -> bool:
        scopes = _scopes(code)
        defined = [_names("".join(s.text)) for s in scopes]
        for index, scope in enumerate(scopes):
            if scope.parent is None:
                continue
            for qualifier in {q.lower() for q in _QUALIFIED.findall("".join(scope.text))}:
                if qualifier in defined[index] or qualifier in defined[scope.parent]:
                    continue
                ancestor = scopes[scope.parent].parent
                while ancestor is not None:
                    if qualifier in defined[ancestor]:
                        return True
                    ancestor = scopes[ancestor].parent
        return False


# (construct, regular expression or matcher, guide page, example the guard must refuse)
EXTRA_RULES: tuple[tuple[str, str | SkipLevelCorrelation, tuple[str, str], str], ...] = (
    ("LATERAL joins", r"\b(JOIN|,)\s*LATERAL\b", FROM,
     "SELECT t.a, x.b FROM s.t JOIN LATERAL (SELECT u.b FROM s.u WHERE u.a = t.a) x ON true"),
    ("UUID / JSON / JSONB data types", r"(::\s*|\bAS\s+|^\s*\w+\s+|[,(]\s*\w+\s+)(UUID|JSONB?)\b", DATATYPES,
     "CREATE TABLE s.t (\n\tid UUID, \n\tdoc JSONB\n)"),
    ("leader-node-only date functions on tables (NOW, AGE, CURRENT_TIMESTAMP, CURRENT_DATE ...)",
     r"^(?=.*\b(FROM|UPDATE|INTO)\b).*?(\b(NOW|AGE|ISFINITE)\s*\(|\b(CURRENT_TIME|CURRENT_TIMESTAMP|LOCALTIME"
     r"|LOCALTIMESTAMP|CURRENT_DATE)\b)", LEADER_ONLY,
     "SELECT a FROM s.t WHERE t.update_time > NOW() - INTERVAL '1 day'"),
    ("skip-level correlated subqueries", SkipLevelCorrelation(), CORRELATED,
     "SELECT t.a FROM s.t WHERE EXISTS (SELECT 1 FROM s.u WHERE u.a IN "
     "(SELECT v.a FROM s.v WHERE v.b = t.b))"),
)  # fmt: skip

# Redshift SQL these rules must let through (the product's shapes).
EXTRA_ALLOWED: tuple[str, ...] = (
    "SELECT t.a FROM s.t WHERE EXISTS (SELECT 1 FROM s.u WHERE u.a = t.a AND u.b IN (SELECT v.b FROM s.v))",
    "SELECT scope.order_id FROM (SELECT t.order_id FROM s.t) AS scope "
    "JOIN s.u ON u.order_id = scope.order_id",
    "INSERT INTO s.t (uuid_text, json_notes) SELECT a, b FROM s.u",
    "SELECT DATEDIFF(second, now()::timestamp, now()::timestamp)",
)
