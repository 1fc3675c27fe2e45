"""The decision gate: does a reply commit to a decision at all?

The rules of :mod:`llm_bridge.unreadable` catch the forms of a non-reply (empty, loops, echoes,
someone else's voice, contradictions).  A real small model also writes fluent text that commits
to nothing: a ramble about the pandemic, a policy disclaimer, a truncated story, or, after a
reward-hacking GRPO run, "happy to have you all in today today in the 15 minute slot".  The
action classifier still picks one of three actions for such text, sometimes with confidence
0.99, and a reward built on it pays for gibberish.

The gate is a logistic regression over a dozen interpretable features of the reply
(:data:`FEATURES`): the classifier's confidence and margin, length, n-gram repetition, stuttered
words, a truncated ending, line breaks, overlap with the prompt, commitment and off-role
phrases, questions, the share of words the classifier knows, and speaker lines.  It is fitted
on labelled replies of both kinds: human replies (all legible) and real SmolLM2-135M replies
labelled by hand (``llm_bridge/data/smollm2_dev.jsonl``; its other half,
``tests/data/smollm2_test.jsonl``, is never used for fitting).  A reply whose gate probability
is at least :data:`GATE_THRESHOLD` is unreadable of kind ``no_decision``.

    gate = fit_gate(decoder, rows)          # rows: LabelledReply with action 0-2 or UNREADABLE
    gate.probability(decoder, event, text, prompt)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .textnorm import normalize
from .unreadable import _content, repetition_share, words

GATE_THRESHOLD = 0.8
"""Gate probability at or above which a reply is ``no_decision``.  Chosen on the fitting data
(the SmolLM2 dev half and `replies_styles_dev.jsonl`): the highest recall on the dev half
while flagging under 2% of the dev human replies (0.935 and 1.7% at 0.8; 0.949 and 2.6% at 0.7)."""

MIN_WORDS = 3
"""Replies shorter than this are never gated: "No." or "ok, covering" has no room to ramble, and
the classifier's reading of it stands."""

HUMAN_WEIGHT = 3.0
"""How much more the legible replies weigh in the fit than a class-balanced weighting would give:
flagging a person's real message costs more than missing a garbled one."""

L2 = 1.0

FEATURES: tuple[str, ...] = (
    "confidence",
    "margin",
    "log_words",
    "repeat_2grams",
    "repeat_3grams",
    "stutter",
    "truncated",
    "log_lines",
    "prompt_overlap",
    "commits",
    "off_role",
    "questions",
    "known_words",
    "speaker_lines",
)

_COMMIT = re.compile(
    r"\b(?:i'll|i will|i can|i can't|i cannot|i won't|i'm not|i am not|let's|let me|will|won't|can't|"
    r"cannot|yes|no|sure|ok|okay|sorry|not|declin\w*|skip\w*|pass|happy to|on it|taking|handing|asking|"
    r"looping|raising|done)\b",
    re.I,
)
_OFF_ROLE = re.compile(
    r"\b(?:as an? (?:ai|seasoned|senior|language)|you are arjun|i am arjun|here's|here is|the following|"
    r"your response|your reply|response:|reply:|message from|story|customer)\b",
    re.I,
)
_SPEAKER_LINE = re.compile(r"^\s*\w+(?: \w+)?\s*:", re.M)


def gate_features(
    decoder, event: int, text: str, prompt: str | None = None, probs: Sequence[float] | None = None
) -> np.ndarray:
    """The :data:`FEATURES` of one reply, as float64 (``decoder`` is a fitted HybridDecoder;
    ``probs``, when the caller already has them, are its three action probabilities)."""
    ws = words(text)
    n = len(ws)
    probs = sorted(decoder.legible(event, text).probs if probs is None else probs, reverse=True)
    known = len(decoder._indices(event, normalize(text))) if text.strip() else 0
    content = set(_content(ws))
    in_prompt = set(words(prompt or ""))
    tail = text.rstrip()[-1:]
    return np.array(
        [
            probs[0],
            probs[0] - probs[1],
            math.log1p(n),
            repetition_share(ws, 2),
            repetition_share(ws, 3),
            float(any(a == b and a.isalpha() for a, b in zip(ws, ws[1:]))),
            float(n >= 20 and tail not in ".!?)\"'"),
            math.log1p(text.count("\n")),
            len(content & in_prompt) / len(content) if content else 0.0,
            float(bool(_COMMIT.search(text[:200]))),
            float(bool(_OFF_ROLE.search(text))),
            10.0 * text.count("?") / max(1, n),
            known / max(1, n),
            float(len(_SPEAKER_LINE.findall(text))),
        ]
    )


@dataclass(frozen=True)
class DecisionGate:
    """A fitted gate: standardisation (``mean``, ``scale``), ``weights``, ``bias``, ``threshold``."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float = GATE_THRESHOLD

    def probability(
        self,
        decoder,
        event: int,
        text: str,
        prompt: str | None = None,
        probs: Sequence[float] | None = None,
    ) -> float:
        """Probability that ``text`` commits to no decision."""
        z = (
            float(
                (gate_features(decoder, event, text, prompt, probs) - self.mean)
                / self.scale
                @ self.weights
            )
            + self.bias
        )
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0

    def flags(
        self,
        decoder,
        event: int,
        text: str,
        prompt: str | None = None,
        probs: Sequence[float] | None = None,
    ) -> bool:
        """Whether ``text`` commits to no decision (never for replies under :data:`MIN_WORDS`)."""
        return (
            len(words(text)) >= MIN_WORDS
            and self.probability(decoder, event, text, prompt, probs) >= self.threshold
        )


def fit_gate(
    decoder,
    rows: Sequence,
    unreadable: int = 3,
    human_weight: float = HUMAN_WEIGHT,
    l2: float = L2,
    threshold: float = GATE_THRESHOLD,
) -> DecisionGate:
    """Fit the gate on ``rows`` (objects with ``event``, ``action``, ``text`` and optionally
    ``prompt``); ``action == unreadable`` marks a reply that commits to no decision."""
    from scipy.optimize import minimize

    X = np.array(
        [gate_features(decoder, r.event, r.text, getattr(r, "prompt", None)) for r in rows]
    )
    y = np.array([r.action == unreadable for r in rows], np.float64)
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("the gate needs replies of both kinds (legible and unreadable)")
    w = np.where(y == 1, 1.0, human_weight * y.sum() / (len(y) - y.sum()))
    mean, scale = X.mean(0), X.std(0) + 1e-6
    Xn = (X - mean) / scale

    def objective(theta):
        z = Xn @ theta[:-1] + theta[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        loss = (
            -np.sum(w * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
            + 0.5 * l2 * theta[:-1] @ theta[:-1]
        )
        g = w * (p - y)
        return loss, np.append(Xn.T @ g + l2 * theta[:-1], g.sum())

    theta = minimize(objective, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B").x
    return DecisionGate(mean, scale, theta[:-1], float(theta[-1]), threshold)
