"""The decoder pinned exactly: normalisation, features, unreadable rules, the fitted decoder.

The accuracy tests (``test_decode.py``, ``test_unreadable.py``) bound what the decoder reads
right, and a small change to a feature or a rule seldom crosses such a bound.  These tests pin
what the decoder computes, reply by reply, on its own data (``llm_bridge/data``, never the
held-out test sets) and on constructed sentences that exercise each normalisation table:

* ``normalize``: tokens, negation marks, plain string, offsets, word count;
* ``feature_keys``: every key with its count, for the event the reply answers;
* ``unreadable_reason``: the rule that fires (or none);
* the trained decoder (classifier and decision gate, trained afresh): probabilities to 1e-6,
  the gate's features and probability, the sentences' decisions, and the decoded action,
  confidence, probabilities and unreadable kind.

A change to any of them is a change to what the decoder reads, which must be intended: then
regenerate the file with ``python -m tests.test_decoder_pins --write`` and review its diff.
The file is ``tests/data/golden/decoder_pins.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

PINS = Path(__file__).parent / "data" / "golden" / "decoder_pins.json"
DATA = Path(__file__).resolve().parents[1] / "llm_bridge" / "data"

# Constructed sentences: contractions, shorthand, typos, idioms with a negation word, negation
# scope (its end at punctuation, contrast words and after SCOPE_WORDS), preambles, quotes,
# markup, unicode apostrophes, numbers and times, one-word answers, next week.
CONSTRUCTED: tuple[tuple[str, str], ...] = (
    ("E2_slack", "I won't take this tonight, but I'll look at it tmrw morning."),
    ("E2_slack", "Here's my reply: \u201cCan\u2019t do 2nite \u2014 ping me at 9:30am.\u201d"),
    ("E2_slack", "No worries, I'll jump on both calls right now!"),
    ("E2_slack", "not now. tomorrow first thing."),
    ("E2_slack", "Sure"),
    ("E2_slack", "nope"),
    (
        "E3_client_email",
        "Rather than a hotfix tonight, I'll send a timeline and a plan for Monday.",
    ),
    ("E3_client_email", "I will never ship an untested patch; instead of rushing, cc my manager."),
    ("E3_client_email", "**Subject:** Re: fix\n\n# Update\nWe'll have the fix deployed by 5pm."),
    ("E3_client_email", "dont worry abt it, so sorry, ill handle the client call asap"),
    ("E6_oncall", "I can't cover Wednesday night, sorry - could Rahul or the rota take it?"),
    ("E6_oncall", "I will not cover Wednesday and I won't swap Thursday either."),
    ("E6_oncall", "No problem, I'll cover Wed night if you take my Thu."),
    ("E6_oncall", "I'm not able to do it this week but happy to help next week."),
    ("E4_leave", "Sundar, please approve my leave for Friday; no need to escalate."),
    ("E4_leave", "I no longer need the leave, cancel it."),
    ("E4_leave", "Following up on my pending leave request \u2014 could you approve it by EOD?"),
    ("E5_appraisal", "I'll finish the self-appraisal tonight."),
    ("E5_appraisal", "Not tonight; I'll block 30 mins on Wednesday for the appraisal."),
    ("E5_appraisal", "Could I get an extension till Monday? Thx!!"),
    ("E7_standup", "I won't attend the 10:30 PM standup; I'll post async notes instead."),
    ("E7_standup", "I'll join the standup at 10:30 tonight."),
    ("E7_standup", "Skipping the late one - Rahul can cover, async update in the channel."),
    ("E7_standup", "yes"),
    ("E1_staging", "Raising a ticket to the infra team and pinging the on-call SRE."),
    ("E1_staging", "I'll debug staging myself right now, no need to wake anyone."),
    ("E1_staging", "I can not look at staging until tomorrow, it isn't urgent."),
    ("E1_staging", "<|im_start|>assistant\nOn it.<|im_end|>"),
    ("E1_staging", ""),
    ("E1_staging", "---\n###\n**Reply:**"),
    ("S1_staging_relapse", "Let's roll back the release and pair with Rahul tomorrow."),
    ("S4_leave_conflict", "I'll hold the leave with a handover doc, not move it to next week."),
    ("S5_night_incident", "Snoozing it; waking the secondary is not needed for a staging alert."),
    ("S6_thursday_exhaustion", "Taking a half day, I'm running on empty."),
    ("E1_staging", "Raised ticket INFRA-XXXX with the infra team."),
    ("E2_slack", "Now?"),
    ("E1_staging", "Disk is at 98%: https://status.example.com/incidents/staging-disk-98 - on it."),
    ("E1_staging", "I will not open status.example.com/incidents/staging-disk-98 tonight."),
    (
        "E3_client_email",
        "We are sorry for the delay and we will share a clear timeline for the"
        " fix by end of day today with the team lead on channel X",
    ),
    # one constructed reply of each unreadable kind the rules catch
    ("E1_staging", "Hi Arjun,\nStaging is down again, can you look?\nBest,\nRahul"),
    ("E6_oncall", "Could you take my Wednesday night?\n- Priya"),
    ("E4_leave", "Sundar: approved.\nRahul: thanks, noted."),
    ("E2_slack", "I'll reply async tomorrow. " * 160),
    ("E2_slack", "ok " * 1333 + "no!"),  # too long: the classifier reads 4,000 characters, "n"
    ("E2_slack", "I'll cover it.\nI'll cover it.\nI'll cover it."),
    ("E5_appraisal", "Energy: 0.4. Sprint health: 0.8. It is Tuesday."),
    ("E6_oncall", "I can't take Wednesday night. Sure, I'll take this one and cover Wednesday."),
    ("E7_standup", "I'll attend the standup tonight. I won't attend, I'll post async notes."),
)


def _rows(name: str, every: int) -> list[tuple[str, str, str | None]]:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    return [(r["event"], r["text"], r.get("prompt")) for r in rows[::every]]


def echoes() -> list[tuple[str, str, str | None]]:
    """Replies that copy an event's own message back, with no prompt given: seven words across
    the end of its title and the start of its body, and its last seven words (each makes three
    copied word 5-grams, the fewest that count as an echo)."""
    from llm_bridge.unreadable import words
    from wlf_jax.events import EVENTS

    out = []
    for spec in (EVENTS[0], EVENTS[3], EVENTS[5]):
        title, body = words(spec.title), words(spec.body)
        out.append((spec.id, " ".join(title[-4:] + body[:3]), None))
        out.append((spec.id, " ".join(body[-7:]), None))
    return out


def cases() -> list[tuple[str, str, str | None]]:
    """(event id, reply, prompt or None): constructed sentences, echoes of the events' own
    messages, then the decoder's own data."""
    out = [(e, t, None) for e, t in CONSTRUCTED] + echoes()
    out += _rows("replies_train.jsonl", 8)
    out += _rows("replies_styles_dev.jsonl", 2)
    out += _rows("smollm2_dev.jsonl", 1)
    return out


def _norm(text: str) -> dict:
    """The normalised reply; its tokens and offsets must agree with ``plain``."""
    from llm_bridge.textnorm import normalize

    n = normalize(text)
    starts, at = [], 0
    for tok in n.tokens:
        starts.append(at)
        at += len(tok) + 1
    assert " ".join(n.tokens) == n.plain and list(n.starts) == starts, (text, n)
    return {
        "plain": n.plain,
        "negated": "".join("1" if x else "0" for x in n.negated),
        "n_words": n.n_words,
    }


def _features(event: str, text: str, full: bool = True) -> list[str] | str:
    """Every feature key with its count; as one digest where ``full`` is False (the replies from
    the data files: the digest keeps the file small and still pins every key)."""
    from llm_bridge.decode import feature_keys
    from llm_bridge.textnorm import normalize

    counts = Counter(feature_keys(event, normalize(text)))
    keys = [f"{k}*{c}" if c > 1 else k for k, c in sorted(counts.items())]
    return keys if full else "sha256:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]


def _reason(event: str, text: str, prompt: str | None) -> str | None:
    from llm_bridge.decode import event_idx
    from llm_bridge.unreadable import unreadable_reason

    return unreadable_reason(event_idx(event), text, prompt)


def _decoded(dec, event: str, text: str, prompt: str | None) -> dict:
    from llm_bridge.decode import event_idx
    from llm_bridge.gate import gate_features

    e = event_idx(event)
    d = dec.decode(e, text, prompt)
    return {
        "proba": [round(float(p), 6) for p in dec.predict_proba(e, text)],
        "gate_features": [round(float(x), 6) for x in gate_features(dec, e, text, prompt)],
        "gate": round(dec.gate.probability(dec, e, text, prompt), 6),
        "decisions": sorted(dec.decisions_in(e, text)),
        "action": int(d.action),
        "confidence": round(float(d.confidence), 6),
        "probs": [round(float(p), 6) for p in d.probs],
        "reason": d.reason,
    }


def snapshot() -> dict:
    """What the decoder computes on every case (the content of the pins file)."""
    from llm_bridge.decode import build_decoder

    dec = build_decoder()
    n_full = len(CONSTRUCTED) + len(echoes())  # the data files' replies get a feature digest
    rows = []
    for i, (event, text, prompt) in enumerate(cases()):
        rows.append(
            {
                "event": event,
                "text": text,
                "norm": _norm(text),
                "features": _features(event, text, full=i < n_full),
                "reason": _reason(event, text, prompt),
                "decoded": _decoded(dec, event, text, prompt),
            }
        )
    return {"about": __doc__.splitlines()[0], "rows": rows}


@pytest.fixture(scope="module")
def pins() -> list[dict]:
    rows = json.loads(PINS.read_text())["rows"]
    assert [(r["event"], r["text"]) for r in rows] == [(e, t) for e, t, _ in cases()], (
        "the cases changed: regenerate the pins (python -m tests.test_decoder_pins --write)"
    )
    return rows


def _mismatches(pins, fn) -> list[str]:
    out = []
    for (event, text, prompt), row in zip(cases(), pins):
        got, want = fn(row, event, text, prompt)
        if got != want:
            out.append(f"{event} {text[:50]!r}: got {got!r}, want {want!r}")
    return out


def test_normalisation_is_pinned(pins):
    bad = _mismatches(pins, lambda r, e, t, p: (_norm(t), r["norm"]))
    assert not bad, f"{len(bad)} replies normalise differently, e.g. {bad[:3]}"


def test_feature_keys_are_pinned(pins):
    bad = _mismatches(
        pins, lambda r, e, t, p: (_features(e, t, isinstance(r["features"], list)), r["features"])
    )
    assert not bad, f"{len(bad)} replies have other features, e.g. {bad[:2]}"


def test_unreadable_rules_are_pinned(pins):
    bad = _mismatches(pins, lambda r, e, t, p: (_reason(e, t, p), r["reason"]))
    assert not bad, f"{len(bad)} replies change their unreadable rule, e.g. {bad[:3]}"
    fired = Counter(r["reason"] for r in pins)
    assert len(fired) >= 6, f"the pinned cases exercise too few rules: {fired}"


def test_trained_decoder_is_pinned(pins):
    from llm_bridge.decode import build_decoder

    dec = build_decoder()
    bad = []
    for (event, text, prompt), row in zip(cases(), pins):
        got, want = _decoded(dec, event, text, prompt), row["decoded"]
        close = (got["action"], got["reason"], got["decisions"]) == (
            want["action"],
            want["reason"],
            want["decisions"],
        ) and all(
            np.allclose(got[k], want[k], atol=2e-6)
            for k in ("proba", "gate_features", "gate", "confidence", "probs")
        )
        if not close:
            bad.append(f"{event} {text[:50]!r}: got {got}, want {want}")
    assert not bad, f"{len(bad)} replies decode differently, e.g. {bad[:2]}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_decoder_pins --write   (rewrites the pins file)")
    snap = snapshot()
    rows = ",\n".join(json.dumps(r, ensure_ascii=False) for r in snap["rows"])
    PINS.write_text(f'{{"about": {json.dumps(snap["about"])},\n"rows": [\n{rows}\n]}}\n')
    print(f"wrote {PINS}")
