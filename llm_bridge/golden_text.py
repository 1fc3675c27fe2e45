"""Check the compatibility text rules against the original's golden outputs.

The golden file (``shared/golden/seed_v1_text_rules.json``) holds, per synthetic string, the
original's decoded action, message quality and the two message flags.  Its list of cases is
named ``rows`` (``cases`` is accepted too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wlf_jax.events import ACTION_NAMES, EVENT_IDS

from .compat import contains_alternative, contains_boundary, judge_v1, keyword_v1

TOL_QUALITY = 1e-9


def text_rule_cases(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The list of cases of a text-rules golden file (``rows`` or ``cases``)."""
    rows = data.get("rows", data.get("cases"))
    if not isinstance(rows, list):
        raise ValueError("not a text-rules golden file (no 'rows' list)")
    return rows


def is_text_rules(data: Any) -> bool:
    """True when ``data`` (a parsed golden file) is in the text-rules format."""
    if not isinstance(data, dict):
        return False
    rows = data.get("rows", data.get("cases"))
    return bool(
        isinstance(rows, list)
        and rows
        and isinstance(rows[0], dict)
        and "text" in rows[0]
        and "steps" not in rows[0]
    )


def check_text_rules(data: dict[str, Any]) -> tuple[int, list[str]]:
    """Run ``keyword_v1``, ``judge_v1`` and the flags on every case; return (cases, mismatches).

    Each mismatch is a one-line message naming the case, the field, what was computed and what
    the golden file says.  Quality is compared with a tolerance of 1e-9.
    """
    rows = text_rule_cases(data)
    out: list[str] = []
    for i, row in enumerate(rows):
        try:
            event, text = row["event"], row["text"]
            e = EVENT_IDS.index(event)
        except (KeyError, ValueError) as exc:
            out.append(f"case {i}: unreadable case ({exc!r})")
            continue
        got_action = ACTION_NAMES[e][keyword_v1(event, text)]
        if "action" in row and got_action != row["action"]:
            out.append(
                f"case {i} ({event}, {text[:40]!r}): action: got {got_action!r}, want {row['action']!r}"
            )
        if "message_quality" in row:
            q = judge_v1(event, text)
            if abs(q - float(row["message_quality"])) > TOL_QUALITY:
                out.append(
                    f"case {i} ({event}, {text[:40]!r}): message_quality: got {q!r}, want {row['message_quality']!r}"
                )
        for flag, fn in (
            ("contains_boundary", contains_boundary),
            ("contains_alternative", contains_alternative),
        ):
            if flag in row and fn(text) != bool(row[flag]):
                out.append(
                    f"case {i} ({event}, {text[:40]!r}): {flag}: got {fn(text)!r}, want {row[flag]!r}"
                )
    return len(rows), out


def check_file(path: str | Path) -> tuple[int, list[str]]:
    """Read a text-rules golden file and check it; raises ``ValueError`` if unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read golden file {path}: {exc}") from exc
    return check_text_rules(data)


def main(path: str | Path) -> int:
    """Print each mismatch and ``N cases, M mismatches``; return 1 on any mismatch."""
    n, mismatches = check_file(path)
    for m in mismatches:
        print(m)
    print(f"{n} cases, {len(mismatches)} mismatches")
    return 1 if mismatches else 0
