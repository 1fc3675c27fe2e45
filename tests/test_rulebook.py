"""docs/rulebook.md is generated from the rule book and must not drift from it."""

from pathlib import Path

from experiments.rulebook import render
from wlf_jax.presets import week_v2_rules as week_v2


def test_docs_rulebook_is_up_to_date():
    doc = Path(__file__).resolve().parents[1] / "docs" / "rulebook.md"
    assert doc.read_text() == render(), "run `wlf rulebook --out docs/rulebook.md`"


def test_every_week_v2_row_has_a_reason():
    assert all(len(r.reason) > 20 for r in week_v2.ROWS)
    assert len(week_v2.ROWS) == 13 * 3
