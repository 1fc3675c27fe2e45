"""The mutation-sample runner (``tests/mutation_sample.py``): its mutants are mutmut's, its outcomes honest."""

from __future__ import annotations

import ast
import json

import pytest

from tests import mutation_sample as ms

TOY = """\
def add(a, b):
    return a + b


class Meter:
    def scale(self, x):
        return x * 2
"""
TOY_TEST = """\
from toy.calc import add


def test_add():
    assert add(2, 3) == 5
"""


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "root"
    (root / "toy").mkdir(parents=True)
    (root / "toy" / "__init__.py").write_text("")
    (root / "toy" / "calc.py").write_text(TOY)
    (root / "tests").mkdir()
    (root / "tests" / "test_toy.py").write_text(TOY_TEST)
    return root


def test_mutants_are_mutmut_s_own_names_and_each_changes_the_file(toy):
    from mutmut.mutation.file_mutation import mutate_file_contents

    mutants = ms.enumerate_mutants("toy/calc.py", root=toy)
    expected = mutate_file_contents("toy/calc.py", TOY).mutant_names
    assert [m.name.removeprefix("toy.calc.") for m in mutants] == list(expected)
    assert any("ǁMeterǁscale" in m.name for m in mutants)
    for m in mutants:
        assert m.code != TOY
        ast.parse(m.code)
        assert m.diff.startswith("--- a/toy/calc.py")
    add_minus = next(m for m in mutants if m.changed_line == "return a - b")
    assert add_minus.name == "toy.calc.x_add__mutmut_1"


def test_the_sample_is_seeded_ordered_and_checked(toy):
    mutants = ms.enumerate_mutants("toy/calc.py", root=toy)
    one = ms.draw(mutants, 1, seed=3)
    assert [m.name for m in one] == [m.name for m in ms.draw(mutants, 1, seed=3)]
    assert ms.draw(mutants, 0, seed=3) == mutants
    assert ms.draw(mutants, 99, seed=3) == mutants
    with pytest.raises(ValueError, match="--n"):
        ms.draw(mutants, -1, seed=3)
    many = [f"m{i}" for i in range(50)]
    fake = [type("M", (), {"name": n})() for n in many]
    picked = [m.name for m in ms.draw(fake, 10, seed=1)]
    assert picked == sorted(picked, key=many.index) and len(set(picked)) == 10
    assert picked != [m.name for m in ms.draw(fake, 10, seed=2)]


def test_outcomes_killed_survived_timeout_and_equivalence_by_name_and_line(toy, tmp_path):
    assert ms.classify(None) == "timeout"
    assert ms.classify(0) == "survived"
    assert ms.classify(1) == "killed" and ms.classify(2) == "killed"

    mutants = {m.changed_line: m for m in ms.enumerate_mutants("toy/calc.py", root=toy)}
    killed, survivor = mutants["return a - b"], mutants["return x * 3"]
    path = tmp_path / "equivalent.json"
    path.write_text(
        json.dumps([{"name": survivor.name, "changed_line": "return x * 3", "why": "untested"}])
    )
    equivalent = ms.load_equivalent(path)
    assert ms.is_equivalent(survivor, equivalent)
    assert not ms.is_equivalent(killed, equivalent)
    renumbered = ms.Mutant(
        survivor.name, killed.path, killed.source, killed._module, killed._original, killed._mutated
    )
    assert not ms.is_equivalent(renumbered, equivalent)  # same name, another change
    path.write_text(json.dumps([{"name": survivor.name}]))
    with pytest.raises(ValueError, match="lacks"):
        ms.load_equivalent(path)

    # Run for real in a copy: the tested change is killed, the untested one survives, the copy
    # is restored, and a run past its limit is a timeout.
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in ("toy", "tests"):
        import shutil

        shutil.copytree(toy / item, copy / item)
    for mutant, outcome in ((killed, "killed"), (survivor, "survived")):
        (copy / mutant.path).write_text(mutant.code)
        returncode, _, _ = ms.run_tests(copy, ["tests/test_toy.py"], timeout=120)
        assert ms.classify(returncode) == outcome
    (copy / "toy" / "calc.py").write_text(TOY)
    assert ms.run_tests(copy, ["tests/test_toy.py"], timeout=120)[0] == 0
    assert ms.run_tests(copy, ["tests/test_toy.py"], timeout=0.01)[0] is None


def test_summary_counts_timeouts_as_killed_and_scores_without_the_equivalent():
    results = [
        {"path": "a.py", "outcome": "killed", "equivalent": False},
        {"path": "a.py", "outcome": "timeout", "equivalent": False},
        {"path": "a.py", "outcome": "survived", "equivalent": True},
        {"path": "b.py", "outcome": "survived", "equivalent": False},
    ]
    rows = {r["file"]: r for r in ms.summarise(results, ["a.py", "b.py"])}
    assert rows["a.py"] == {
        "file": "a.py",
        "sampled": 3,
        "killed": 2,
        "timeouts": 1,
        "survived": 1,
        "equivalent": 1,
        "score": 2 / 3,
        "score_of_behaviour_changing": 1.0,
    }
    assert rows["b.py"]["score"] == 0.0 and rows["b.py"]["score_of_behaviour_changing"] == 0.0
    assert rows["all"]["sampled"] == 4 and rows["all"]["score_of_behaviour_changing"] == 2 / 3


def test_the_default_selection_is_the_dynamics_tests_of_the_mutmut_config():
    tests = ms.default_tests()
    assert "tests/test_env.py::test_golden_trajectories_have_no_mismatch" in tests
    assert "tests/test_env.py::test_jax_matches_plain_python" in tests
    assert all(t.startswith("tests/test_env.py") for t in tests[: -len(ms.EXTRA_TESTS)])
    known = ms.load_equivalent()
    dynamics = {m.name: m for f in ms.FILES for m in ms.enumerate_mutants(f)}
    for name, entry in known.items():  # every listed equivalent still names the mutant it meant
        assert name in dynamics, name
        assert dynamics[name].changed_line == entry["changed_line"], name
