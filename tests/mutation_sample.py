"""A reproducible mutation sample of files that mutmut's workers cannot run (``make mutants-sample``).

mutmut runs each mutant in a worker forked from a process that already imported the code.  For
``wlf_jax/dynamics.py`` and ``wlf_jax/reward.py`` this hangs: the mutant of the jitted step runs
XLA in a process forked from one that already ran it (docs/testing.md).  This runner scores them
without forking: it enumerates the same mutants as mutmut 3 (its own operators, numbered as
``mutmut show`` names them), draws a seeded sample, writes each mutant into a private copy of
the source tree and runs the selected tests there in a fresh ``python -m pytest`` process.

* A mutant is **killed** when the tests fail (any non-zero exit) or run past the time limit
  (``--timeout-factor`` times the unmutated run, as mutmut counts a timeout), and **survives**
  when they pass.
* Survivors that cannot change what the code computes are listed, each with the reason, in
  ``tests/data/mutants_equivalent.json``; an entry names the mutant and its changed line, so a
  renumbered mutant is not taken for another.
* Before any mutant the unmutated tree is run once per copy: it must pass, and the copy's
  ``wlf_jax`` must be the one imported (not the installed checkout).
* Results are written after every mutant to ``--out`` (JSON); an interrupted run resumes from it
  when started again with the same sample.

    python -m tests.mutation_sample                       # 66 mutants of the two files, seed 1
    python -m tests.mutation_sample --n 0 --jobs 2        # every mutant (about 70 min on 2 cores)
    python -m tests.mutation_sample --show NAME           # one mutant's diff
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FILES = ("wlf_jax/dynamics.py", "wlf_jax/reward.py")
EQUIVALENT = ROOT / "tests" / "data" / "mutants_equivalent.json"
# The folders a test run needs; the copy leaves out results, docs and the virtual environment.
TREE = ("agents", "experiments", "llm_bridge", "tests", "wlf_jax", "pyproject.toml")
# Tests of the reward outside test_env.py, added to the [tool.mutmut] selection's test_env.py part.
EXTRA_TESTS = (
    "tests/test_units.py::test_relationship_component_is_capped_at_one_when_the_weights_sum_past_one",
)


@dataclass
class Mutant:
    name: str  # as mutmut names it: module.x_function__mutmut_N
    path: str  # relative to the root
    source: str  # the unmutated file
    _module: object = field(repr=False)  # libcst module and the node to replace, and its mutant
    _original: object = field(repr=False)
    _mutated: object = field(repr=False)

    @cached_property
    def code(self) -> str:
        """The whole mutated file."""
        from mutmut.mutation.file_mutation import deep_replace

        return deep_replace(self._module, self._original, self._mutated).code

    @cached_property
    def diff(self) -> str:
        lines = difflib.unified_diff(
            self.source.splitlines(keepends=True),
            self.code.splitlines(keepends=True),
            fromfile=f"a/{self.path}",
            tofile=f"b/{self.path}",
        )
        return "".join(lines)

    @property
    def changed_line(self) -> str:
        """The first line the mutant adds, or "-" and the first it removes: with the name, its id."""
        changes = [
            line
            for line in self.diff.splitlines()
            if line[:1] in "+-" and line[:3] not in ("+++", "---")
        ]
        added = [line[1:].strip() for line in changes if line.startswith("+")]
        if added and added[0]:
            return added[0]
        removed = [line[1:].strip() for line in changes if line.startswith("-")]
        return "- " + (removed[0] if removed else "")


def default_tests(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The test_env.py part of ``[tool.mutmut]``'s selection, and the reward's unit tests."""
    config = tomllib.loads(pyproject.read_text())["tool"]["mutmut"]
    selection = config["pytest_add_cli_args_test_selection"]
    return [t for t in selection if t.startswith("tests/test_env.py")] + list(EXTRA_TESTS)


def enumerate_mutants(path: str, root: Path = ROOT) -> list[Mutant]:
    """Every mutant mutmut 3 makes of one file, in its order and with its names."""
    import libcst as cst
    from mutmut.mutation.file_mutation import create_mutations
    from mutmut.mutation.trampoline_templates import mangle_function_name

    source = (root / path).read_text()
    module, mutations, ignored_classes, ignored_functions = create_mutations(path, source)
    module_name = path.removesuffix(".py").replace("/", ".")
    # The class of each method, as mutmut mangles methods' names.
    owner: dict[int, str] = {}
    for statement in module.body:
        if isinstance(statement, cst.ClassDef) and isinstance(statement.body, cst.IndentedBlock):
            for item in statement.body.body:
                if isinstance(item, cst.FunctionDef):
                    owner[id(item)] = statement.name.value
    counts: dict[int, int] = {}
    mutants = []
    for mutation in mutations:
        function = mutation.contained_by_top_level_function
        if function is None:  # module-level code: mutmut leaves it alone
            continue
        class_name = owner.get(id(function))
        if function.name.value in ignored_functions or class_name in ignored_classes:
            continue
        counts[id(function)] = counts.get(id(function), 0) + 1
        mangled = mangle_function_name(name=function.name.value, class_name=class_name)
        name = f"{module_name}.{mangled}__mutmut_{counts[id(function)]}"
        mutants.append(
            Mutant(name, path, source, module, mutation.original_node, mutation.mutated_node)
        )
    return mutants


def draw(mutants: list[Mutant], n: int, seed: int) -> list[Mutant]:
    """A seeded sample of n mutants in their enumeration order (all of them when n is 0)."""
    if n < 0:
        raise ValueError(f"--n must be >= 0, got {n}")
    if n == 0 or n >= len(mutants):
        return list(mutants)
    chosen = sorted(random.Random(seed).sample(range(len(mutants)), n))
    return [mutants[i] for i in chosen]


def load_equivalent(path: Path = EQUIVALENT) -> dict[str, dict]:
    """Known equivalent mutants by name, each with its changed line and the reason."""
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())
    for entry in entries:
        missing = {"name", "changed_line", "why"} - set(entry)
        if missing:
            raise ValueError(f"{path}: entry {entry.get('name', entry)} lacks {sorted(missing)}")
    return {entry["name"]: entry for entry in entries}


def is_equivalent(mutant: Mutant, equivalent: dict[str, dict]) -> bool:
    entry = equivalent.get(mutant.name)
    return entry is not None and entry["changed_line"] == mutant.changed_line


def classify(returncode: int | None) -> str:
    """pytest's exit status as a mutant's outcome: None is a run past its time limit."""
    if returncode is None:
        return "timeout"
    return "survived" if returncode == 0 else "killed"


def sample_id(mutants: list[Mutant], tests: list[str]) -> str:
    """What a resumed run must share with the interrupted one: the mutants and the tests."""
    digest = hashlib.sha256()
    for mutant in mutants:
        digest.update(mutant.name.encode() + b"\0" + mutant.code.encode())
    digest.update("\0".join(tests).encode())
    return digest.hexdigest()[:16]


def make_copy(destination: Path, root: Path = ROOT) -> Path:
    for item in TREE:
        source = root / item
        if source.is_dir():
            shutil.copytree(
                source, destination / item, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif source.exists():
            shutil.copy2(source, destination / item)
    return destination


def _environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["WLF_CACHE"] = ""  # every mutant solves and compiles afresh
    # and shares no cache folder with a test run that started this one (tests/conftest.py)
    for name in ("WLF_TEST_CACHE", "JAX_COMPILATION_CACHE_DIR"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_tests(copy: Path, tests: list[str], timeout: float | None) -> tuple[int | None, float, str]:
    """pytest on the copy: (exit status or None past the limit, seconds, the output's tail)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=copy,
            env=_environment(copy),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start, ""
    return done.returncode, time.perf_counter() - start, (done.stdout + done.stderr)[-2000:]


def check_copy(copy: Path, tests: list[str], files: list[str]) -> float:
    """The unmutated copy imports itself and passes: the seconds it took."""
    modules = [f.removesuffix(".py").replace("/", ".") for f in files]
    probe = (
        "import importlib, sys; print(*[importlib.import_module(m).__file__ for m in sys.argv[1:]])"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, *modules],
        cwd=copy,
        env=_environment(copy),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for module_file in found:
        if not Path(module_file).resolve().is_relative_to(copy.resolve()):
            raise RuntimeError(
                f"the copy imports {module_file}, not its own source; check PYTHONPATH"
            )
    returncode, seconds, tail = run_tests(copy, tests, timeout=None)
    if returncode != 0:
        raise RuntimeError(f"the unmutated tests fail in {copy} (exit {returncode}):\n{tail}")
    return seconds


def _write(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def summarise(results: list[dict], files: list[str]) -> list[dict]:
    """Per file and in all: sampled, killed (timeouts among them), survived, equivalent, scores."""
    rows = []
    for label, paths in [(f, {f}) for f in files] + [("all", set(files))]:
        mine = [r for r in results if r["path"] in paths]
        killed = sum(r["outcome"] in ("killed", "timeout") for r in mine)
        timeouts = sum(r["outcome"] == "timeout" for r in mine)
        survived = [r for r in mine if r["outcome"] == "survived"]
        equivalent = sum(r["equivalent"] for r in survived)
        changing = len(mine) - equivalent
        rows.append(
            {
                "file": label,
                "sampled": len(mine),
                "killed": killed,
                "timeouts": timeouts,
                "survived": len(survived),
                "equivalent": equivalent,
                "score": killed / len(mine) if mine else None,
                "score_of_behaviour_changing": killed / changing if changing else None,
            }
        )
    return rows


def print_summary(rows: list[dict], results: list[dict]) -> None:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    print(
        f"\n{'file':<22} {'sampled':>7} {'killed':>7} {'(t/o)':>6} {'survived':>8} {'equiv':>6} {'score':>7} {'of changing':>11}"
    )
    for r in rows:
        print(
            f"{r['file']:<22} {r['sampled']:>7} {r['killed']:>7} {r['timeouts']:>6} {r['survived']:>8}"
            f" {r['equivalent']:>6} {pct(r['score']):>7} {pct(r['score_of_behaviour_changing']):>11}"
        )
    open_survivors = [r for r in results if r["outcome"] == "survived" and not r["equivalent"]]
    if open_survivors:
        print(f"\n{len(open_survivors)} survivor(s) not known to be equivalent:")
        for r in open_survivors:
            print(f"  {r['name']}: {r['changed_line']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation_sample",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--files", nargs="+", default=list(FILES), help="files to mutate, relative to the root"
    )
    parser.add_argument("--n", type=int, default=66, help="mutants to sample (0: all)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sample")
    parser.add_argument(
        "--jobs", type=int, default=2, help="mutants run at once, each in its own copy"
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        default=None,
        help="pytest node ids (default: the dynamics' selection)",
    )
    parser.add_argument(
        "--timeout-factor",
        type=float,
        default=10.0,
        help="time limit per mutant, in unmutated runs",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("wlf_out/mutants_sample.json"), help="results (JSON)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the sample's names and changed lines, run nothing"
    )
    parser.add_argument("--show", metavar="NAME", help="print one mutant's diff, run nothing")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.timeout_factor <= 1:
        parser.error(f"--timeout-factor must be > 1, got {args.timeout_factor}")
    for f in args.files:
        if not (ROOT / f).is_file():
            parser.error(f"no such file: {f}")

    everything = [m for f in args.files for m in enumerate_mutants(f)]
    if args.show:
        match = [m for m in everything if m.name == args.show]
        if not match:
            parser.error(f"no mutant named {args.show} in {', '.join(args.files)}")
        print(match[0].diff, end="")
        return 0
    try:
        sample = draw(everything, args.n, args.seed)
    except ValueError as error:
        parser.error(str(error))
    if args.list:
        for m in sample:
            print(f"{m.name}\t{m.changed_line}")
        return 0

    tests = args.tests or default_tests()
    equivalent = load_equivalent()
    ident = sample_id(sample, tests)
    results: list[dict] = []
    if args.out.exists():
        previous = json.loads(args.out.read_text())
        if previous.get("sample_id") == ident:
            results = previous["results"]
            print(f"resuming {args.out}: {len(results)} of {len(sample)} done")
    done = {r["name"] for r in results}
    todo = [m for m in sample if m.name not in done]
    print(
        f"{len(sample)} of {len(everything)} mutants of {', '.join(args.files)} (seed {args.seed}),"
        f" {len(todo)} to run, {args.jobs} at a time, against {len(tests)} tests"
    )

    def payload() -> dict:
        order = {m.name: i for i, m in enumerate(sample)}
        ordered = sorted(results, key=lambda r: order[r["name"]])
        return {
            "sample_id": ident,
            "files": args.files,
            "seed": args.seed,
            "n": len(sample),
            "of": len(everything),
            "tests": tests,
            "summary": summarise(ordered, args.files),
            "results": ordered,
        }

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wlf-mutants-") as scratch:
        copies = [
            make_copy(Path(scratch) / f"copy{j}") for j in range(min(args.jobs, max(len(todo), 1)))
        ]
        if todo:
            with ThreadPoolExecutor(len(copies)) as pool:
                base = max(pool.map(lambda c: check_copy(c, tests, args.files), copies))
            print(
                f"unmutated tests pass in every copy: {base:.1f} s; limit {args.timeout_factor * base:.0f} s"
            )
        free = list(copies)
        finished = len(results)

        def run_one(mutant: Mutant) -> dict:
            copy = free.pop()
            target = copy / mutant.path
            original = target.read_text()
            try:
                target.write_text(mutant.code)
                returncode, seconds, tail = run_tests(
                    copy, tests, timeout=args.timeout_factor * base
                )
            finally:
                target.write_text(original)
                free.append(copy)
            outcome = classify(returncode)
            return {
                "name": mutant.name,
                "path": mutant.path,
                "changed_line": mutant.changed_line,
                "outcome": outcome,
                "equivalent": outcome == "survived" and is_equivalent(mutant, equivalent),
                "seconds": round(seconds, 1),
            }

        pool = ThreadPoolExecutor(len(copies))
        try:
            for row in pool.map(run_one, todo):
                results.append(row)
                finished += 1
                _write(args.out, payload())
                tag = " (equivalent)" if row["equivalent"] else ""
                print(
                    f"[{finished}/{len(sample)}] {row['name']}: {row['outcome']}{tag} in {row['seconds']} s",
                    flush=True,
                )
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            print(f"\ninterrupted: {len(results)} results kept in {args.out}; run again to resume")
            return 130
        pool.shutdown()
    final = payload()
    _write(args.out, final)
    print_summary(final["summary"], final["results"])
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
