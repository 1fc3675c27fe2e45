"""Parity of keyword_v1, judge_v1 and the message flags with the original's golden outputs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from llm_bridge.golden_text import check_text_rules, is_text_rules

_NAME = "seed_v1_text_rules.json"
_CANDIDATES = [
    Path(__file__).parent / "data" / "golden" / _NAME,
    Path(__file__).resolve().parents[2] / "shared" / "golden" / _NAME,
]
GOLDEN = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[0])


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.exists():
        pytest.skip(f"golden file not found: {GOLDEN}")
    return json.loads(GOLDEN.read_text())


def test_zero_mismatches(golden):
    n, mismatches = check_text_rules(golden)
    assert n == len(golden["rows"]) == 600
    assert mismatches == []


def test_a_changed_case_is_reported(golden):
    data = copy.deepcopy(golden)
    data["rows"][3]["action"] = (
        "attend_sacrifice" if data["rows"][3]["action"] != "attend_sacrifice" else "decline_async"
    )
    data["rows"][5]["message_quality"] += 0.05
    data["rows"][7]["contains_boundary"] = not data["rows"][7]["contains_boundary"]
    _, mismatches = check_text_rules(data)
    assert len(mismatches) == 3
    assert "case 3" in mismatches[0] and "action" in mismatches[0]
    assert "message_quality" in mismatches[1] and "contains_boundary" in mismatches[2]


def test_format_detection(golden):
    assert is_text_rules(golden)
    assert not is_text_rules({"cases": [{"order": [], "actions": {}, "steps": []}]})
    assert not is_text_rules([1, 2])
    with pytest.raises(ValueError):
        check_text_rules({"about": "nothing"})


def test_check_golden_cli(golden, capsys):
    from experiments.cli import main

    assert main(["check-golden", str(GOLDEN)]) == 0
    assert "600 cases, 0 mismatches" in capsys.readouterr().out


def test_check_golden_cli_fails_on_mismatch(golden, tmp_path, capsys):
    from experiments.cli import main

    data = copy.deepcopy(golden)
    data["rows"][0]["message_quality"] = 0.99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["check-golden", str(bad)]) == 1
    assert "600 cases, 1 mismatches" in capsys.readouterr().out
