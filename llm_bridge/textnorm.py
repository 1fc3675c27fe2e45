"""Text normalisation shared by the decoder and the judge.

Lower-cases, expands contractions ("won't" -> "will not"), maps common chat shorthand and
typos to their words ("2nite" -> "tonight", "tmrw" -> "tomorrow"), protects idioms that contain
a negation word without negating anything ("no worries"), tokenises, and marks the scope of
each negation: the content words after "not", "never", "no", "rather than", "instead of"...
until punctuation or a contrast word.  Pure Python and ``re``; results are cached per text.

Longer than 400 lines on purpose: most of it is the shorthand, typo and idiom tables.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_APOSTROPHES = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\ufe0f": None,
        "\u200d": None,
    }
)

# Preambles that some models put before the message itself.
_PREAMBLE = re.compile(
    r"^\s*(?:(?:here(?:'s| is) )?(?:my|the) (?:reply|response|message|answer|plan|draft)"
    r"(?: would be)?|reply|response|answer|message)\s*:\s*",
    re.I,
)

# Contractions, expanded token by token (after tokenising, before shorthand).
CONTRACTIONS: dict[str, str] = {
    "can't": "can not",
    "cant": "can not",
    "cannot": "can not",
    "cnt": "can not",
    "won't": "will not",
    "wont": "will not",
    "shan't": "shall not",
    "shant": "shall not",
    "ain't": "is not",
    "aint": "is not",
    "dont": "do not",
    "doesnt": "does not",
    "didnt": "did not",
    "isnt": "is not",
    "arent": "are not",
    "wasnt": "was not",
    "werent": "were not",
    "shouldnt": "should not",
    "wouldnt": "would not",
    "couldnt": "could not",
    "havent": "have not",
    "hasnt": "has not",
    "hadnt": "had not",
    "mustnt": "must not",
    "neednt": "need not",
    "dnt": "do not",
    "i'm": "i am",
    "let's": "let us",
    "lets": "let us",
    "il": "i will",
    "itll": "it will",
    "ive": "i have",
    "youre": "you are",
    "theyre": "they are",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "what's": "what is",
    "here's": "here is",
    "he's": "he is",
    "she's": "she is",
    "thats": "that is",
}
_SUFFIXES = (
    ("n't", " not"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'re", " are"),
    ("'d", " would"),
    ("'s", ""),
    ("'", ""),
)

# Idioms with a negation word that do not negate what follows (joined into one token), and
# multi-word negators (joined so that they open a scope).  Applied after contractions.
PHRASES: dict[str, str] = {
    "no worries": "noworries",
    "no worry": "noworries",
    "not to worry": "noworries",
    "do not worry": "noworries",
    "no problem": "noproblem",
    "no problems": "noproblem",
    "not a problem": "noproblem",
    "no prob": "noproblem",
    "not an issue": "noproblem",
    "no issue": "noproblem",
    "no issues": "noproblem",
    "no doubt": "nodoubt",
    "not only": "notonly",
    "not just": "notonly",
    "no matter what": "nomatterwhat",
    "no rush": "norush",
    "no pressure": "norush",
    "not sure": "notsure",
    "no can do": "can not do",
    "rather than": "rather_than",
    "instead of": "instead_of",
    "no need to": "no_need_to",
    "no longer": "no_longer",
}
_PHRASES_RE = re.compile(
    r"(?<![\w'])(?:"
    + "|".join(sorted((re.escape(k) for k in PHRASES), key=len, reverse=True))
    + r")(?![\w'])"
)

# Chat shorthand and frequent misspellings -> words.
SHORTHAND: dict[str, str] = {
    "2nite": "tonight",
    "2night": "tonight",
    "tonite": "tonight",
    "tonght": "tonight",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tmrow": "tomorrow",
    "2mrw": "tomorrow",
    "2moro": "tomorrow",
    "tomo": "tomorrow",
    "tommorow": "tomorrow",
    "tomorow": "tomorrow",
    "2day": "today",
    "tday": "today",
    "u": "you",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "plss": "please",
    "thx": "thanks",
    "thanx": "thanks",
    "thnx": "thanks",
    "ty": "thanks",
    "rn": "now",
    "b4": "before",
    "nxt": "next",
    "wil": "will",
    "wud": "would",
    "cud": "could",
    "abt": "about",
    "msg": "message",
    "im": "i am",
    "ya": "yes",
    "yea": "yes",
    "yeah": "yes",
    "yep": "yes",
    "yup": "yes",
    "haan": "yes",
    "np": "noproblem",
    "ok": "okay",
    "okk": "okay",
    "k": "okay",
    "kk": "okay",
    "ofc": "of course",
    "idk": "notsure",
    "omw": "on my way",
    "brb": "back soon",
    "lmk": "let me know",
    "w": "with",
    "srry": "sorry",
    "sry": "sorry",
    "sory": "sorry",
    "soz": "sorry",
    "realy": "really",
    "aftr": "after",
    "frm": "from",
    "wed": "wednesday",
    "weds": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "sat": "saturday",
    "sun": "sunday",
    "hrs": "hours",
    "mins": "minutes",
    "min": "minutes",
    "approx": "about",
    "cancle": "cancel",
    "cancell": "cancel",
    "aprove": "approve",
    "approv": "approve",
    "handel": "handle",
    "xtension": "extension",
    "extention": "extension",
    "secondry": "secondary",
    "calender": "calendar",
    "calandar": "calendar",
    "meetin": "meeting",
    "definately": "definitely",
    "definetly": "definitely",
    "eod": "end of day",
    "thred": "thread",
    "aftrnoon": "afternoon",
    "myslf": "myself",
    "handovr": "handover",
    "stagin": "staging",
    "bak": "back",
    "requestng": "requesting",
    "escalatng": "escalating",
    "restartd": "restarted",
    "blokd": "blocked",
    "raisd": "raised",
    "snoozin": "snoozing",
    "takin": "taking",
    "joinin": "joining",
    "replyin": "replying",
    "pingng": "pinging",
    "giv": "give",
    "thru": "through",
    "n": "and",
    "nite": "night",
    "clinet": "client",
    # Hindi words common in Indian English chat
    "nahi": "not",
    "nahin": "not",
    "nai": "not",
    "mat": "not",
    "abhi": "now",
    "aaj": "today",
    "kal": "tomorrow",
    "raat": "night",
    "subah": "morning",
    "khud": "myself",
    "chalo": "okay",
    "theek": "okay",
    "thik": "okay",
    "haanji": "yes",
}

NEGATORS = frozenset(
    {"not", "never", "no", "nor", "without", "unable", "neither", "nothing", "nobody", "none"}
)
NEGATORS = NEGATORS | {"rather_than", "instead_of", "no_need_to", "no_longer"}

# Words that end a negation scope (besides punctuation).
SCOPE_END = frozenset(
    {
        "but",
        "however",
        "though",
        "although",
        "instead",
        "so",
        "yet",
        "and",
        "then",
        "because",
        "as",
        "since",
        "until",
        "till",
        "while",
        "except",
        "just",
        "only",
        "rather",
        "if",
    }
)
# Words that do not count towards the scope's length (function words).
_SCOPE_FREE = frozenset(
    {
        "be",
        "been",
        "being",
        "able",
        "to",
        "the",
        "a",
        "an",
        "i",
        "going",
        "gonna",
        "do",
        "doing",
        "have",
        "it",
        "this",
        "that",
        "any",
        "my",
        "your",
        "really",
        "even",
        "at",
        "all",
        "for",
        "of",
        "on",
        "in",
        "will",
        "would",
        "can",
        "could",
        "shall",
        "should",
        "is",
        "am",
        "are",
        "get",
        "got",
        "me",
        "you",
        "we",
        "us",
        "up",
        "again",
        "more",
        "quite",
        "too",
        "there",
        "make",
        "take",
        "bother",
    }
)
SCOPE_WORDS = 3  # content words negated after a negator

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[_'.:/+-][a-z0-9]+)*|[^\sa-z0-9]")
_WORD_RE = re.compile(r"[a-z0-9]")
PUNCT_END = frozenset('.,;:!?\n()[]"-|>/')


@dataclass(frozen=True)
class Normalized:
    """A normalised reply: tokens (shorthand expanded), negation flags, and the plain string.

    ``plain`` is the tokens joined by single spaces; ``starts[i]`` is the offset of token ``i``
    in ``plain``; ``negated[i]`` is True for tokens inside a negation scope.
    """

    tokens: tuple[str, ...]
    negated: tuple[bool, ...]
    plain: str
    starts: tuple[int, ...]
    n_words: int


def strip_preamble(text: str) -> str:
    """Remove a leading 'Here's my reply:' and surrounding quotes."""
    t = _PREAMBLE.sub("", text.strip(), count=1).strip()
    if len(t) >= 2 and t[0] == t[-1] == '"':
        t = t[1:-1]
    return t


def basic_clean(text: str) -> str:
    """NFKC, unify quotes and dashes, lower-case, drop a leading 'Here's my reply:'."""
    t = unicodedata.normalize("NFKC", text or "").translate(_APOSTROPHES).lower()
    return strip_preamble(t)


def _expand(tok: str) -> str:
    rep = CONTRACTIONS.get(tok)
    if rep is not None:
        return rep
    if "'" in tok:
        for suf, r in _SUFFIXES:
            if tok.endswith(suf):
                return tok[: -len(suf)] + r
    return SHORTHAND.get(tok, tok)


def _normalize(text: str) -> Normalized:
    """Normalise ``text`` (see module doc); :func:`normalize` is this function, cached."""
    raw = _TOKEN_RE.findall(basic_clean(text))
    joined = " ".join([_expand(t) for t in raw])
    joined = _PHRASES_RE.sub(lambda m: PHRASES[m.group(0)], joined)
    tokens = joined.split()
    negated = [False] * len(tokens)
    left = 0
    for i, tok in enumerate(tokens):
        if tok in NEGATORS:
            left = SCOPE_WORDS
            continue
        if left:
            if tok in PUNCT_END or tok in SCOPE_END or not _WORD_RE.match(tok):
                left = 0
                continue
            negated[i] = True
            if tok not in _SCOPE_FREE:
                left -= 1
    starts = []
    pos = 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    n_words = sum(1 for t in tokens if _WORD_RE.match(t))
    return Normalized(tuple(tokens), tuple(negated), " ".join(tokens), tuple(starts), n_words)


# A reply is normalised 2-4 times (decoder, judge); a small cache bounds memory (~70 bytes of
# structures per character kept).  Wrapped here rather than decorated, so that the function
# itself stays within reach of mutation testing (docs/testing.md).
normalize = lru_cache(maxsize=32)(_normalize)
normalize.__doc__ = "Normalise ``text`` (see module doc).  Cached: identical texts cost one lookup."
