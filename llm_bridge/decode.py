"""Free text -> action: the project's default decoder (``hybrid_v2``) and the original's
``keyword_v1``.

``hybrid_v2`` is a per-event multinomial logistic regression over

* word unigrams and bigrams, with words inside a negation scope kept apart ("~attend"),
* character 3- and 4-grams of each word (typos: "cancle", "aprove", "handel"),
* hand-written cues per action (:mod:`cues`), negation-aware: a cue that starts inside a
  negation scope becomes ``cue~:<action>``,
* generic shape cues (a shell session, a late hour, a weekday, a bare yes/no, length).

The cues are the model's prior: training is MAP estimation with a Gaussian prior centred on
+1 for a cue's own action (-1 for a negated cue), so a phrase the corpus never showed still
counts, and the corpus can overrule a cue.  It is trained at first use from the labelled
replies shipped in ``llm_bridge/data/replies_train.jsonl`` (plus deterministic typo copies)
in about a second, and cached in memory.  Deterministic, pure numpy/scipy, no network.

Usage::

    from llm_bridge.decode import decode
    action, confidence = decode("E7_standup", "I won't be joining tonight, notes by 9")

Longer than 400 lines on purpose: features, optimiser and model are one trained artefact (the
feature keys index the learned weights), so they change together and stay together.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wlf_jax.events import ACTION_NAMES, EVENT_IDS, N_ACTIONS

from . import compat
from .cues import BARE_NO, BARE_YES, GENERIC_TOKENS, NEXT_WEEK, PRIOR, compile_cues
from .textnorm import PUNCT_END, Normalized, normalize
from .unreadable import unreadable_reason

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA_DIR / "replies_train.jsonl"
GATE_FILES = (
    DATA_DIR / "replies_styles_dev.jsonl",
    DATA_DIR / "smollm2_dev.jsonl",
    DATA_DIR / "smollm2_dev_options.jsonl",
)
"""Fitting data of the decision gate (``llm_bridge.gate``) beside ``TRAIN_FILE``: human replies in
other styles, real SmolLM2-135M replies to the older prompts labelled by hand (the dev half; the
test half is ``tests/data/smollm2_test.jsonl``), and replies to the current prompts from the
committed warm-up and GRPO adapters on states apart from every test set, labelled blind."""

UNREADABLE = N_ACTIONS
"""Action index of an unreadable reply (``llm_bridge.unreadable``): one past the three actions."""
UNREADABLE_NAME = "unreadable"


def action_label(event: int, action: int) -> str:
    """The name of a decoded action, ``unreadable`` included."""
    return UNREADABLE_NAME if action == UNREADABLE else ACTION_NAMES[event][action]


class Decoded(NamedTuple):
    """A decoded reply: action index (0, 1, 2, or ``UNREADABLE`` = 3), confidence in [0, 1], the
    three actions' probabilities, and for an unreadable reply its kind (``UNREADABLE_KINDS``)."""

    action: int
    confidence: float
    probs: tuple[float, float, float]
    reason: str | None = None

    @property
    def unreadable(self) -> bool:
        return self.action == UNREADABLE


@dataclass(frozen=True)
class LabelledReply:
    """One labelled reply of a corpus file: event index, action index, text, and the prompt it
    answered when the file records it."""

    event: int
    action: int
    text: str
    prompt: str | None = None


def event_idx(event: int | str) -> int:
    """Index of an event given as an id ("E4_leave") or an index; raises ``KeyError``."""
    if isinstance(event, (int, np.integer)):
        if not 0 <= int(event) < len(EVENT_IDS):
            raise KeyError(f"event index {event} out of range 0..{len(EVENT_IDS) - 1}")
        return int(event)
    try:
        return EVENT_IDS.index(event)
    except ValueError:
        raise KeyError(f"unknown event {event!r}; known: {', '.join(EVENT_IDS)}") from None


def parse_action(event: int, action: int | str) -> int:
    """Action index of a label: an action name of ``event``, ``unreadable``, or an index 0-3.
    Raises ``ValueError`` for anything else."""
    if action == UNREADABLE_NAME:
        return UNREADABLE
    if isinstance(action, str) and not action.isdigit():
        if action not in ACTION_NAMES[event]:
            raise ValueError(
                f"unknown action {action!r} for {EVENT_IDS[event]}; known: "
                f"{', '.join(ACTION_NAMES[event])}, {UNREADABLE_NAME}"
            )
        return ACTION_NAMES[event].index(action)
    a = int(action)
    if not 0 <= a <= UNREADABLE:
        raise ValueError(f"action {a} out of range")
    return a


def load_labelled(path: str | Path) -> list[LabelledReply]:
    """Read a JSONL file of ``{"event": id|index, "action": name|index, "text": str}`` lines.

    Raises ``ValueError`` naming the file and line for malformed lines, unknown events or
    actions.  Blank lines are skipped.
    """
    out: list[LabelledReply] = []
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FileNotFoundError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            e = event_idx(row["event"])
            a = parse_action(e, row["action"])
            text = row["text"]
            if not isinstance(text, str):
                raise ValueError("text is not a string")
            prompt = row.get("prompt")
            if prompt is not None and not isinstance(prompt, str):
                raise ValueError("prompt is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: bad labelled line ({exc})") from None
        out.append(LabelledReply(e, a, text, prompt))
    return out


# ---- features ---------------------------------------------------------------------------

CHAR_N = (3, 4)
GROUP_SCALE = {"w": 1.0, "b": 0.6, "c": 0.25, "q": 1.0, "g": 0.6}
"""Feature value per group: words, bigrams, char n-grams, cues, generic/shape features."""


CACHED_TOKEN_CHARS = 32
"""Only tokens up to this length are cached: a word is short, and a client sending unique long
"tokens" (a 4,000-character string without spaces) must not grow any cache by its size."""
TOKEN_CACHE_SIZE = 4096
"""Entries of the token-key cache (about 1 KB each).  Per event, only tokens the classifier has
a word feature for are kept (a bounded vocabulary); an unseen token is looked up each time, so a
stream of unique words costs time, not memory."""


def _token_keys(token: str, negated: bool) -> tuple[str, ...]:
    """Word and character n-gram feature keys of one token (short tokens are cached)."""
    if len(token) <= CACHED_TOKEN_CHARS:
        return _short_token_keys(token, negated)
    return _keys_of(token, negated)


def _keys_of(token: str, negated: bool) -> tuple[str, ...]:
    neg = "~" if negated else ""
    keys = [f"w{neg}:{token}"]
    if len(token) >= 3 and token[0].isalpha():
        padded = f"<{token}>"
        for n in CHAR_N:
            for i in range(len(padded) - n + 1):
                keys.append(f"c{neg}:{padded[i : i + n]}")
    return tuple(keys)


_short_token_keys = lru_cache(maxsize=TOKEN_CACHE_SIZE)(_keys_of)  # wrapped: see textnorm


def _length_bucket(n: int) -> str:
    if n == 0:
        return "g:len0"
    if n <= 3:
        return "g:len1-3"
    if n <= 10:
        return "g:len4-10"
    if n <= 30:
        return "g:len11-30"
    return "g:len31+"


_CUES, _GENERIC = compile_cues()
_DIGIT = re.compile(r"\d")


def _context_keys(event_id: str, norm: Normalized) -> list[str]:
    """Feature keys that are not per-token: bigrams, cues, generic cues, length."""
    keys: list[str] = []
    toks, neg = norm.tokens, norm.negated
    prev = "<s>"
    next_week = False
    for tok, ng in zip(toks, neg):
        if tok in PUNCT_END:
            prev = "<p>"
            continue
        if prev == "next" and tok in NEXT_WEEK:
            next_week = True
        cur = ("~" + tok) if ng else tok
        keys.append(f"b:{prev}|{cur}")
        prev = cur
    if next_week:
        keys.append("g:next_week")
    plain = norm.plain
    starts = norm.starts
    for action, rx in _CUES.get(event_id, ()):
        for m in rx.finditer(plain):
            i = _token_at(starts, m.start())
            keys.append(f"q~:{action}" if neg[i] else f"q:{action}")
    if _DIGIT.search(plain):
        for m in _GENERIC.finditer(plain):
            keys.append("g:" + m.lastgroup)  # type: ignore[operator]
    tokset = set(toks)
    for name, words in GENERIC_TOKENS:
        if not tokset.isdisjoint(words):
            keys.append("g:" + name)
    if norm.n_words == 1:
        if not tokset.isdisjoint(BARE_YES):
            keys.append("g:bare_yes")
        elif not tokset.isdisjoint(BARE_NO):
            keys.append("g:bare_no")
    keys.append(_length_bucket(norm.n_words))
    return keys


def feature_keys(event_id: str, norm: Normalized) -> list[str]:
    """All feature keys of a normalised reply for one event (duplicates allowed)."""
    keys: list[str] = []
    for tok, ng in zip(norm.tokens, norm.negated):
        if tok not in PUNCT_END:
            keys.extend(_token_keys(tok, ng))
    keys.extend(_context_keys(event_id, norm))
    return keys


def _token_at(starts: Sequence[int], pos: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _group(key: str) -> str:
    return key[0]


# ---- typo augmentation ------------------------------------------------------------------


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # drop a letter
        return word[:i] + word[i + 1 :]
    if kind == 1:  # swap two letters
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if kind == 2:  # double a letter
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1 :].replace("e", "", 1)  # drop a vowel-ish letter


def typo_copy(text: str, rng: random.Random, rate: float = 0.3) -> str:
    """A copy of ``text`` with typos in about ``rate`` of its longer words (deterministic in rng)."""
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) >= 5 and w.isalpha() and rng.random() < rate:
            words[i] = _typo(w, rng)
    return " ".join(words)


# ---- optimiser --------------------------------------------------------------------------


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # elementwise, not BLAS: BLAS threads spin badly on a busy 2-core machine
    return float(np.multiply(a, b).sum())


def lbfgs(
    fun, x0: np.ndarray, maxiter: int = 150, memory: int = 10, tol: float = 1e-5
) -> np.ndarray:
    """Minimise a smooth function with L-BFGS (two-loop recursion, Armijo backtracking).

    ``fun(x) -> (value, gradient)``.  Deterministic; small and fast for the decoder's convex
    problems (a few thousand parameters), with no import cost beyond numpy.
    """
    x = np.asarray(x0, np.float64).copy()
    f, g = fun(x)
    hist: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(maxiter):
        if np.max(np.abs(g)) < tol:
            break
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(hist):
            a = rho * _dot(s, q)
            q -= a * y
            alphas.append(a)
        if hist:
            s, y, _ = hist[-1]
            q *= _dot(s, y) / _dot(y, y)
        else:
            q /= max(1.0, math.sqrt(_dot(g, g)))
        for (s, y, rho), a in zip(hist, reversed(alphas)):
            b = rho * _dot(y, q)
            q += s * (a - b)
        d = -q
        gd = _dot(g, d)
        if gd >= 0:  # not a descent direction: restart from the gradient
            hist.clear()
            d = -g / max(1.0, math.sqrt(_dot(g, g)))
            gd = _dot(g, d)
        t = 1.0
        while True:
            xn = x + t * d
            fn, gn = fun(xn)
            if fn <= f + 1e-4 * t * gd or t < 1e-8:
                break
            t *= 0.5
        s, y = xn - x, gn - g
        sy = _dot(s, y)
        if sy > 1e-10:
            hist.append((s, y, 1.0 / sy))
            if len(hist) > memory:
                hist.pop(0)
        x, f, g = xn, fn, gn
    return x


# ---- the model --------------------------------------------------------------------------

CONTRADICTION_CONFIDENCE = 0.9
"""A reply is contradictory when two of its sentences (3+ words each) are each decoded with at
least this confidence to different actions while the whole reply is decoded with less."""

STRONG_CONTRADICTION = 0.99
"""Two clauses that each commit at least this confidently to different actions make a reply
contradictory even when the whole reply reads as one of them ("I'll join tonight but I'll ask
Priya to cover"; chosen on ``llm_bridge/data/smollm2_dev_options.jsonl``)."""

_SENTENCES = re.compile(
    r"(?<=[.!?;])\s+|\n+|\s+(?:but|or|actually|wait)\s+|,\s*(?:no|actually|wait|or)\b,?\s*", re.I
)
# finer: a comma or "and" before a new first-person commitment also starts a clause ("I'll block
# Wednesday 3-4, I'll complete it tonight" holds two decisions).  Both splits are read: the
# finer one can leave a clause too short to commit ("Sure, | I'll take this one").
_CLAUSES = re.compile(
    _SENTENCES.pattern
    + r"|,\s*(?=(?:and\s+)?(?:i'll|i will|i'm going to|i am going to|let's|let me)\b)"
    + r"|\s+and\s+(?=(?:i'll|i will)\b)",
    re.I,
)

# a reply's clauses also part at an "and" that joins a second verb to the same "I" ("I'll block
# Wednesday afternoon and write the appraisal tonight" commits to two options): an "and" not
# followed by a new subject, a determiner or "then" (read by the whole-reply contradiction rule
# only, so "I'll own it and set up a call" stays one decision when the reply reads clearly)
_PREDICATES = re.compile(
    _SENTENCES.pattern
    + r"|\s+and\s+(?!(?:i'll|i will|then|the|a|an|we|you|they|he|she|it|its|this|that|there"
    r"|my|your|our|their|his|her)\b)",
    re.I,
)


def _second_best(acts: dict[int, float]) -> float:
    """The second-highest confidence of ``acts`` (0 with fewer than two actions)."""
    return sorted(acts.values())[-2] if len(acts) >= 2 else 0.0


class HybridDecoder:
    """Per-event logistic regression over n-grams and negation-aware cues (see module doc).

    ``fit`` trains from labelled replies; ``decode``/``predict_proba`` apply it.  All state is
    numpy arrays and dicts; identical inputs give identical outputs.
    """

    name = "hybrid_v2"

    def __init__(self, l2: float = 0.3, augment: int = 1, seed: int = 0, maxiter: int = 150):
        self.l2 = float(l2)
        self.maxiter = int(maxiter)
        self.augment = int(augment)
        self.seed = int(seed)
        self.vocab: list[dict[str, int]] = []
        self.weights: list[np.ndarray] = []  # (V, 3), already multiplied by the group scale
        self.bias: list[np.ndarray] = []  # (3,)
        self._token_cache: list[dict[tuple[str, bool], tuple[int, ...]]] = []
        self.gate = None  # a DecisionGate (llm_bridge.gate), attached by get_decoder

    # -- training --
    def fit(self, rows: Iterable[LabelledReply]) -> HybridDecoder:
        """Train one model per event from ``rows``; events without rows keep a uniform model."""
        from scipy.sparse import csr_matrix

        rows = list(rows)
        rng = random.Random(self.seed)
        by_event: dict[int, list[tuple[str, int]]] = {e: [] for e in range(len(EVENT_IDS))}
        for r in rows:
            if r.action == UNREADABLE:  # the classifier learns the three actions only
                continue
            by_event[r.event].append((r.text, r.action))
            for _ in range(self.augment):
                by_event[r.event].append((typo_copy(r.text, rng), r.action))
        self.vocab, self.weights, self.bias = [], [], []
        for e, eid in enumerate(EVENT_IDS):
            data = by_event[e]
            vocab: dict[str, int] = {}
            # cue features exist even if the corpus never shows them: they carry the prior
            for a in range(N_ACTIONS):
                for k in (f"q:{a}", f"q~:{a}"):
                    vocab.setdefault(k, len(vocab))
            feats = []
            for text, _ in data:
                ks = set(feature_keys(eid, normalize(text)))
                for k in ks:
                    vocab.setdefault(k, len(vocab))
                feats.append(ks)
            V = len(vocab)
            scale = np.ones(V)
            for k, j in vocab.items():
                scale[j] = GROUP_SCALE[_group(k)]
            prior = np.zeros((V, N_ACTIONS))
            for a in range(N_ACTIONS):
                prior[vocab[f"q:{a}"], a] = PRIOR / GROUP_SCALE["q"]
                prior[vocab[f"q~:{a}"], a] = -PRIOR / GROUP_SCALE["q"]
            if not data:
                self.vocab.append(vocab)
                self.weights.append(prior * scale[:, None])
                self.bias.append(np.zeros(N_ACTIONS))
                continue
            ri, ci, vals = [], [], []
            for i, ks in enumerate(feats):
                for k in ks:
                    j = vocab[k]
                    ri.append(i)
                    ci.append(j)
                    vals.append(scale[j])
            X = csr_matrix((vals, (ri, ci)), shape=(len(data), V))
            Y = np.zeros((len(data), N_ACTIONS))
            Y[np.arange(len(data)), [a for _, a in data]] = 1.0
            l2 = self.l2
            Xt = X.T.tocsr()

            def objective(theta):
                W = theta[:-N_ACTIONS].reshape(V, N_ACTIONS)
                b = theta[-N_ACTIONS:]
                Z = X @ W + b
                Z -= Z.max(1, keepdims=True)
                P = np.exp(Z)
                P /= P.sum(1, keepdims=True)
                loss = -np.sum(Y * np.log(P + 1e-12)) + 0.5 * l2 * np.sum((W - prior) ** 2)
                G = P - Y
                gW = Xt @ G + l2 * (W - prior)
                gb = G.sum(0)
                return loss, np.concatenate([gW.ravel(), gb])

            theta0 = np.concatenate([prior.ravel(), np.zeros(N_ACTIONS)])
            theta = lbfgs(objective, theta0, maxiter=self.maxiter)
            W = theta[:-N_ACTIONS].reshape(V, N_ACTIONS)
            self.vocab.append(vocab)
            self.weights.append(W * scale[:, None])
            self.bias.append(theta[-N_ACTIONS:].copy())
        self._token_cache = [{} for _ in EVENT_IDS]
        return self

    # -- inference --
    def _indices(self, e: int, norm: Normalized) -> set[int]:
        """Active feature columns of a reply (same features as :func:`feature_keys`)."""
        vocab = self.vocab[e]
        cache = self._token_cache[e]  # holds known words only: bounded by the vocabulary
        idx: set[int] = set()
        for tok, ng in zip(norm.tokens, norm.negated):
            cols = cache.get((tok, ng))
            if cols is None:
                if tok in PUNCT_END:
                    cols = ()
                else:
                    cols = tuple(vocab[k] for k in _token_keys(tok, ng) if k in vocab)
                if f"w:{tok}" in vocab or f"w~:{tok}" in vocab:
                    cache[(tok, ng)] = cols
            idx.update(cols)
        get = vocab.get
        for k in _context_keys(EVENT_IDS[e], norm):
            j = get(k)
            if j is not None:
                idx.add(j)
        return idx

    def scores(self, event: int | str, text: str) -> np.ndarray:
        """Unnormalised scores (3,) of the three actions for ``text`` under ``event``."""
        e = event_idx(event)
        idx = self._indices(e, normalize(text or ""))
        if not idx:
            return self.bias[e].copy()
        return self.weights[e][list(idx)].sum(0) + self.bias[e]

    def predict_proba(self, event: int | str, text: str) -> np.ndarray:
        """Probabilities (3,) of the three actions."""
        z = self.scores(event, text)
        z = np.exp(z - z.max())
        return z / z.sum()

    def decode(self, event: int | str, text: str, prompt: str | None = None) -> Decoded:
        """Decode one reply: (action, confidence, probs, reason).  A reply that commits to no
        decision (``llm_bridge.unreadable``: empty, too long, a loop, an echo of the prompt,
        someone else's message, contradictory decisions) decodes to ``UNREADABLE`` with its
        kind in ``reason``; ``prompt``, when given, sharpens echo detection."""
        e = event_idx(event)
        text = text or ""
        reason = unreadable_reason(e, text, prompt)
        if reason is not None:
            probs = (
                self.legible(e, text[:4000]).probs if reason != "empty" else (1 / 3, 1 / 3, 1 / 3)
            )
            return Decoded(UNREADABLE, 1.0, probs, reason)
        whole = self.legible(e, text)
        # a reply is contradictory when two of its sentences commit confidently to different
        # actions *and* the reply as a whole does not settle it (a brief to Rahul that also
        # quotes the runbook's restart step is one decision, read with confidence >= 0.95), or
        # when two clauses of the finer split are each all but certain (STRONG_CONTRADICTION;
        # the finer split alone would read "Sorry, I can't do a third one, I'll take one of your
        # shifts if you cover mine" as a decline and a swap)
        if (
            whole.confidence < CONTRADICTION_CONFIDENCE and len(self.decisions_in(e, text)) >= 2
        ) or _second_best(self.clause_decisions(e, text, fine=True)) >= STRONG_CONTRADICTION:
            return Decoded(UNREADABLE, 1.0, whole.probs, "contradictory")
        if self.gate is not None and self.gate.flags(self, e, text, prompt, whole.probs):
            return Decoded(UNREADABLE, 1.0, whole.probs, "no_decision")
        return whole

    def decisions_in(
        self, event: int | str, text: str, min_confidence: float = CONTRADICTION_CONFIDENCE
    ) -> set[int]:
        """Actions that sentences of ``text``, or the predicates an "and" joins to one "I",
        commit to on their own (decoded with at least ``min_confidence``; pieces of fewer than 3
        words are skipped).  Two or more make a reply contradictory."""
        return set(self.clause_decisions(event, text, min_confidence, predicates=True))

    def clause_decisions(
        self,
        event: int | str,
        text: str,
        min_confidence: float = CONTRADICTION_CONFIDENCE,
        fine: bool = False,
        predicates: bool = False,
    ) -> dict[int, float]:
        """{action: highest confidence} over the sentences of ``text`` that commit to an action
        on their own (see :meth:`decisions_in`); with ``predicates``, also over the pieces an
        "and" without a new subject parts; with ``fine``, also over the clauses of the finer
        split (a comma or "and" before a new "I'll")."""
        acts: dict[int, float] = {}
        segs = _SENTENCES.split(text or "")
        if predicates:
            segs = list(dict.fromkeys(segs + _PREDICATES.split(text or "")))
        if fine:
            segs = list(dict.fromkeys(segs + _CLAUSES.split(text or "")))
        for seg in segs:
            if seg and len(seg.split()) >= 3:
                d = self.legible(event, seg)
                if d.confidence >= min_confidence:
                    acts[d.action] = max(acts.get(d.action, 0.0), d.confidence)
        return acts

    def legible(self, event: int | str, text: str) -> Decoded:
        """The classifier alone: the most likely of the three actions, whatever the text is."""
        e = event_idx(event)
        z0, z1, z2 = self.scores(e, text).tolist()
        m = max(z0, z1, z2)
        x0, x1, x2 = math.exp(z0 - m), math.exp(z1 - m), math.exp(z2 - m)
        tot = x0 + x1 + x2
        probs = (x0 / tot, x1 / tot, x2 / tot)
        a = 0 if (z0 >= z1 and z0 >= z2) else (1 if z1 >= z2 else 2)
        return Decoded(a, probs[a], probs)

    def decode_batch(
        self, events: Sequence[int | str], texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode many replies: (actions int32 (N,), confidences float32 (N,))."""
        out = [self.decode(e, t) for e, t in zip(events, texts)]
        return (
            np.array([d.action for d in out], np.int32),
            np.array([d.confidence for d in out], np.float32),
        )


class KeywordV1Decoder:
    """The original keyword decoder as a decoder object (confidence 1 on a keyword hit, 1/3 without)."""

    name = "keyword_v1"

    def decode(self, event: int | str, text: str, prompt: str | None = None) -> Decoded:
        """Decode one reply with the original first-keyword rule (never unreadable: parity)."""
        e = event_idx(event)
        low = (text or "").lower()
        hit = any(k in low for k, _ in compat.KEYWORDS_V1.get(EVENT_IDS[e], ()))
        a = compat.keyword_v1(e, text or "")
        conf = 1.0 if hit else 1.0 / 3.0
        probs = [0.0, 0.0, 0.0] if hit else [1 / 3] * 3
        probs[a] = conf
        return Decoded(a, conf, tuple(probs))  # type: ignore[arg-type]

    def decode_batch(self, events, texts):
        """Decode many replies: (actions int32 (N,), confidences float32 (N,))."""
        out = [self.decode(e, t) for e, t in zip(events, texts)]
        return (
            np.array([d.action for d in out], np.int32),
            np.array([d.confidence for d in out], np.float32),
        )


DECODER_NAMES: tuple[str, ...] = ("hybrid_v2", "keyword_v1")
DEFAULT_DECODER = "hybrid_v2"


def build_decoder() -> HybridDecoder:
    """The default decoder, trained afresh: the classifier on ``TRAIN_FILE``, then its decision
    gate (``llm_bridge.gate``) on ``TRAIN_FILE`` and ``GATE_FILES``.  Deterministic."""
    from .gate import fit_gate

    train = load_labelled(TRAIN_FILE)
    dec = HybridDecoder().fit(train)
    dec.gate = fit_gate(dec, train + [r for f in GATE_FILES for r in load_labelled(f)], UNREADABLE)
    return dec


@cache
def _trained_hybrid() -> HybridDecoder:
    return build_decoder()


def get_decoder(name: str = "default"):
    """A decoder object by name (``hybrid_v2`` = ``default``, ``keyword_v1``).

    The default decoder is trained on first use (about a second) and cached for the process.
    """
    if name in ("default", "hybrid_v2"):
        return _trained_hybrid()
    if name == "keyword_v1":
        return KeywordV1Decoder()
    raise KeyError(f"unknown decoder {name!r}; known: default, {', '.join(DECODER_NAMES)}")


def decode(event: int | str, text: str, decoder: str = "default") -> tuple[int, float]:
    """Decode ``text`` written in reply to ``event``: ``(action index, confidence)``; the index
    is ``UNREADABLE`` (3) for a reply that commits to no decision."""
    d = get_decoder(decoder).decode(event, text)
    return d.action, d.confidence


def keyword_v1(event: int | str, text: str) -> int:
    """The original keyword decoder (SPEC §3.2); see :func:`llm_bridge.compat.keyword_v1`."""
    return compat.keyword_v1(event, text)


def decode_batch(events: Sequence[int | str], texts: Sequence[str], decoder: str = "default"):
    """Decode many replies: ``(actions int32 (N,), confidences float32 (N,))``."""
    return get_decoder(decoder).decode_batch(events, texts)


Decoder = Callable[[int | str, str], Decoded]
