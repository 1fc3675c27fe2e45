"""Hand-written cue lexicon: per event and action, phrases that signal that action.

Each cue is a regular expression over the normalised plain text (see :mod:`textnorm`:
lower case, contractions expanded, shorthand mapped to words).  The decoder turns every match
into a feature ``cue:<action>``, or ``cue~:<action>`` when the match starts inside a negation
scope ("I will not *attend*"), and uses the cues as the prior of its linear model: a cue starts
with weight +PRIOR on its own action, a negated cue with -PRIOR.  The training corpus then
decides how much each cue is worth and what a negated cue means for the other two actions.

Generic cues (not tied to an action) describe the shape of a reply: a shell session, a late
hour, a daytime slot, a weekday, a bare yes, a bare no, an empty message.
"""

from __future__ import annotations

import re

_DAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_TIME = r"(?:\d{1,2}(?::\d\d)?\s?(?:am|pm)|\d{1,2}:\d\d|\d{1,2}(?::\d\d)?\s?-\s?\d{1,2}(?::\d\d)?\s?(?:am|pm)?)"

# Phrases of doing a thing oneself, as opposed to handing it on.
_SELF = (
    r"myself|personally|on it|mine|i will (?:fix|handle|sort|take|deal|do)\w*|i am (?:on it|fixing|handling|taking)"
    r"|leave it with me|i (?:have )?got (?:it|this)|taking (?:this|it)\b(?! ?over to)|take care of it"
)
_IGNORE = (
    r"ignor\w*|left on read|leav\w* (?:them |it |those |the \w+ )?(?:on read|unanswered)|unanswered"
    r"|mut(?:e|ing|ed)|snooz\w*|dnd|do not disturb|no repl\w*|no response|no message"
    r"|not (?:\w+ ){0,2}(?:repl\w*|respond\w*|answer\w*|deal\w*)|seen|busy|meh|whatever"
    r"|not my (?:problem|priority)|no time|do not (?:bother|ping)|pretend|clos\w* slack"
    r"|archiv\w*|do not care|figure it out|can wait|🙉|🙈"
)

CUES: dict[str, dict[int, str | tuple[str, ...]]] = {
    "E1_staging": {
        0: (
            _SELF,
            r"ssh\w*|sudo|systemctl|journalctl|logrotate|df -h|du -\w+|rm -\w+|truncate|prune"
            r"|vacuum|kubectl|restart\w*|bounc\w*|purg\w*|free[sd]? (?:up )?(?:disk|space|\d+ ?g)"
            r"|clear\w* (?:the |old |up |some )?(?:disk|logs?|space|/var)|clean\w* (?:it |up|the|old)"
            r"|on the box|logging into|do the needful|fix\w* (?:it|this) (?:myself|now|directly)|fixing it",
        ),
        1: (
            r"rahul|on-?call|oncall|primary|on rotation|on the rota|delegat\w*|reassign\w*|hand\w*[- ]?(?:it |this )?(?:off|over)"
            r"|pass\w* (?:it |this )?(?:to|on)|assign\w* (?:to|him)|over to you|all yours|yours\b"
            r"|(?:can|could|would|will) (?:you|the on-?call\w*)(?: \w+)? (?:take|pick|own|handle|run)"
        ),
        2: (
            r"infra\w*|sre\b|devops|ops team|cloud ?ops|platform-infra|ticket\w*|jira|their (?:box|host|disk|problem|volume|queue)"
            r"|escalat\w*|rais\w* (?:a |it |with)|filed|filing|queue"
        ),
    },
    "E2_slack": {
        0: (
            r"async\w*|thread|in writing|written|write (?:it )?up|writing|repl\w* (?:here|in)|answer\w* (?:in|here|by|them)"
            r"|drop (?:your|the) \w+|post (?:your|the)|send (?:me )?(?:the |a )?(?:details|logs|link|loom|doc)"
            r"|comments?|loom|doc\b|after lunch|post lunch|later (?:today|in the day)|(?:at|after|by|till) \d"
            r"|\d ?pm|slot|calendar|tomorrow|heads down|buried|swamped|not (?:live|on a call)|keep (?:this|it) in"
        ),
        1: (
            r"call(?:ing)? (?:you|now|both|me)|hop\w* on|jump\w* on|join\w*|huddle|on my way|ring (?:me|you)"
            r"|right now|straight away|right away|immediately|let us (?:talk|do it|jump|hop|have)|free now"
            r"|meet link|calling|talk now|chat now|📞"
        ),
        2: (_IGNORE,),
    },
    "E3_client_email": {
        0: (
            r"thanks?|thank you|appreciate|patience|(?:by|on|for|until|target\w*|eta|date|ships?|going live|deploy\w*|live|release\w*|production|fix\w*)\b.{0,25}\b(?:monday|tuesday|wednesday|thursday|friday)"
            r"|root cause|cause|traced|identified|found|status|plan|timeline|realistic\w*|update (?:you|on)|keep you posted|on track|eta"
        ),
        1: (
            r"so+ sorry|really (?:really )?sorry|terribl\w*|deep\w*|sincere\w*|profuse\w*|can not apologi[sz]e enough"
            r"|mortified|ashamed|feel (?:terrible|awful)|forgive|my fault|entirely|unacceptable|asap|as fast as"
            r"|as soon as possible|as quickly as|at the earliest|immediately|right away|at once|right now|promise\w*"
            r"|guarantee\w*|assure|whatever it takes|around the clock|24/7|never happen again|drop\w* everything"
            r"|through the night|top priority|sorry,? sorry|thousand apologies|let (?:you )?down|🙏"
        ),
        2: (
            r"cc|cc'?d|cc'?ing|cc-ing|ccing|copy|copying|copied|in copy|on cc|loop\w* (?:in|my)|looping|adding|\+ ?sundar"
            r"|sundar|manager|bring\w* (?:sundar|my manager|in)|forward\w*|visibility"
        ),
    },
    "E4_leave": {
        0: (
            r"ping\w*|nudg\w*|remind\w*|chas\w*|follow\w* up|message|dm|approve|approval|sign (?:it )?off|action it"
            r"|ask (?:him|sundar|my manager)|(?:hi|hey|dear) sundar|sundar,|today|word with|rais\w* it|call\w* sundar|📩"
        ),
        1: (
            r"wait\w*|hop(?:e|ing)|fingers crossed|🤞|let it be|leave it (?:be|pending)|see (?:what happens|if)"
            r"|eventually|on its own|by itself|automatically|not (?:\w+ ){0,2}(?:chas\w*|ping\w*|nudg\w*|bother\w*|pester\w*|push\w*|disturb\w*)"
            r"|hold off|give it|no action|nothing to do|dismiss|get to it|be approved|get\w* approved|sort itself|itll"
        ),
        2: (
            r"cancel\w*|withdraw\w*|retract\w*|revok\w*|pull (?:back|the|it)|scrap\w*|forget it|take back|delet\w*"
            r"|no leave|drop (?:it|the leave)|come in|work (?:on )?thursday|❌"
        ),
    },
    "E5_appraisal": {
        0: (
            r"block\w*|calendar|cal\b|slot\w*|book\w*|reserv\w*|schedul\w*|time-?box\w*|focus (?:time|block)|hold\b"
            r"|wednesday|dnd|do not (?:disturb|book)|set aside|carv\w*|afternoon|after lunch|post lunch|📅"
            r"|\d{1,2}(?::\d\d)? ?- ?\d{1,2}(?::\d\d)?|1[2-8]:\d\d|\b[1-5](?::\d\d)? ?pm"
        ),
        1: (
            r"tonight|this evening|evening|after (?:dinner|supper|work|office|logging off|the kids|the client call)"
            r"|late (?:night|tonight)|midnight|all-?nighter|stay up|before bed|\b(?:9|10|11|12)(?::\d\d)? ?pm|\b1 ?am"
            r"|rush\w*|quick and dirty|one (?:go|sitting)|get it (?:done|over)|🌙|knock it out|power through"
        ),
        2: (
            r"extension|extend\w*|more time|extra (?:time|days)|push (?:the )?(?:deadline|date)|deadline|defer\w*|postpon\w*"
            r"|submit late|till (?:next|monday)|until next|next (?:week|monday|wednesday|friday)|few (?:more|extra) days|\bhr\b"
        ),
    },
    "E6_oncall": {
        0: (
            r"can not|will not|shall not|not this (?:time|week)|not possible|pass\b|declin\w*|say no|sit this one out"
            r"|regret|unable|afraid|wish i could|(?:ask|check with|reach out to|post in) (?:rahul|priya|someone|the rota|other)"
            r"|take care|hope (?:it|the|things|everything|your)|need (?:the |my )?(?:rest|sleep|night)|exhausted"
            r"|running on empty|wiped|^no\b|nope|out of gas"
        ),
        1: (
            r"^yes|yes\b|sure|^okay|of course|happy to|noworries|noproblem|i will (?:take|cover|do) it|i will cover"
            r"|covered|put me (?:in|down)|count me in|consider it done|go on then|it is yours|^done|i got you"
            r"|family comes first|👍|i will take (?:it|wednesday)|go be with"
        ),
        2: (
            r"swap\w*|trade\w*|exchange|in return|return the favou?r|deal\b|if (?:you|u) (?:take|cover|do|pick)"
            r"|provided|only (?:if|as|in return)|for my (?:\w+ )?(?:saturday|sunday|friday|monday|tuesday|thursday|weekend|shift|night)"
            r"|(?:take|cover|do) my|one of (?:mine|my)|🔁"
        ),
    },
    "E7_standup": {
        0: (
            r"declin\w*|skip\w*|pass on|give (?:\w+ ){0,3}a miss|sit this one out|rsvp no|no to the call"
            r"|async\w*|written|in writing|write (?:\w+ )?up|notes|summary|update (?:by|before|in|will)|email\w*|loom|record\w*"
            r"|one-?pager|offline|by 9|📝|❌"
        ),
        1: (
            r"attend\w*|join\w*|be there|dial in|accept\w*|see you|rsvp yes|log in at|pop in|count me in|i am in\b"
            r"|i will be on|stay up|going\b|✅"
        ),
        2: (
            r"priya|on my behalf|in my (?:place|stead)|instead_of me|represent\w*|forward\w* (?:the invite )?to|delegat\w*"
            r"|teammate|colleague|➡️"
        ),
    },
    "S1_staging_relapse": {
        0: (
            r"taking (?:it |this )?over|take (?:it |this )?over|mine|myself|root cause|permanent|for good|properly"
            r"|own\w*|leave it with me|get to the bottom|logrotate|sudo|systemctl|rca|i will (?:fix|handle|sort|dig)|🛠"
        ),
        1: (
            r"pair\w*|together|jointly|joint|side by side|team up|sit (?:down )?with|screen ?share|with rahul"
            r"|rahul and (?:me|i)|rahul \+ me|me and rahul|👯"
        ),
        2: (
            r"roll\w*[ -]?back|rollback|revert\w*|back(?:ing)? out|restor\w*|undo|defer\w*|postpon\w*|delay\w*|slip\w*"
            r"|push the release|next (?:week|sprint|monday)|⏪"
        ),
    },
    "S2_slack_followup": {
        0: (
            r"my (?:bad|miss|mistake|fault)|on me|own\w*|dropped (?:it|the ball)|book\w*|schedul\w*|invite|slot|calendar"
            r"|\bhold\b|(?:at|@) \d|\d ?pm|\d:\d\d|today at|fair\b|🙋"
        ),
        1: (
            r"all (?:afternoon|day)|whole (?:afternoon|day)|entire afternoon|rest of the day|till (?:evening|eve|\d)"
            r"|as long as|back to back|clear\w* (?:my |the )?(?:whole )?(?:afternoon|day)|calls? (?:with|all)|on calls?|huddle open|📞"
        ),
        2: (_IGNORE,),
    },
    "S3_client_reescalation": {
        0: (
            r"honest\w*|realistic\w*|straight answer|plan\b|dated|owners?|checkpoint|milestone|monday|tuesday|wednesday|friday"
            r"|staging|production|daily|every day|over-?promised|too optimistic|you are right|📅"
        ),
        1: (
            r"promise\w*|guarantee\w*|100%|definitely|for sure|without fail|my word|assure|tomorrow|within (?:a day|24 hours)"
            r"|nodoubt|nomatterwhat|🤞"
        ),
        2: (
            r"sundar|manager|hand\w* (?:over|it|this|the|to)|over to|take (?:this|it) (?:up|forward)|owns? the reply|step in"
            r"|transfer\w*|forward\w*|➡️"
        ),
    },
    "S4_leave_conflict": {
        0: (
            r"keep\w*|hold\w*|retain|stays?|handover|hand over|checklist|runbook|doc\b|cover arranged|primary|backup"
            r"|walk (?:priya|her|them) through|reachable|take (?:thursday|the day) off|🗓"
        ),
        1: (
            r"give (?:it )?up|giving up|forgo|cancel\w*|drop (?:the |it)|no leave|leave is off|work thursday"
            r"|be (?:in|there) thursday|i am in|withdraw|skip (?:it|the leave)|let it go|👍"
        ),
        2: (
            r"move\w*|shift\w*|reschedul\w*|push (?:it|the leave)|postpon\w*|defer\w*|next (?:week|monday|tuesday|wednesday|thursday|friday)"
            r"|after the release|new date|instead|➡️"
        ),
    },
    "S5_night_incident": {
        0: (
            r"alone|solo|myself|my own|do not (?:page|wake)|no_need_to wake|i (?:have )?got (?:it|this)|staying up|stay (?:up|on)"
            r"|till (?:it is )?(?:resolved|fixed)|until (?:it is )?resolved|working it|on it|kubectl|🧑"
        ),
        1: (
            r"secondary|escalat\w*|page (?:rahul|the secondary)|paging|rahul|hand\w* (?:over|to|it)|take over|mitigat\w*"
            r"|stabili[sz]\w*|bleeding|runbook|pass it|🩹|📟"
        ),
        2: (
            r"snooz\w*|morning|sleep|silenc\w*|mute|till \d|until \d|at \d ?am|after (?:breakfast|sunrise)|when i wake|wake up"
            r"|blip|auto-?resolve|can wait|😴"
        ),
    },
    "S6_thursday_exhaustion": {
        0: (
            r"half[- ]?day|afternoon off|take the afternoon|log\w* off|rest\b|resting|recover\w*|offline|sleep|sign off"
            r"|second half off|😴"
        ),
        1: (
            r"push\w* (?:on|through)|power\w* through|coffee|caffeine|espresso|chai|soldier on|tough it|grind|keep (?:going|working)"
            r"|full day|no (?:rest|break|half day)|☕|muscle through|needs must|^go\b|\bgo$"
        ),
        2: (r"rahul|present\w* (?:my|for|on)|demo (?:on )?my|cover\w*|take my slot|on my behalf"),
    },
}

# Generic cues, not tied to an action: regular expressions (one pass, named groups) and
# token sets.  They are features without a prior.
GENERIC: tuple[tuple[str, str], ...] = (  # times of day; only tried when the text has a digit
    ("late_hour", r"\b(?:9|10|11|12)(?::\d\d)? ?pm\b|\b(?:1|2|3)(?::\d\d)? ?am\b|\b2[1-3]:\d\d\b"),
    ("day_time", r"\b(?:[1-7]|1[0-2])(?::\d\d)? ?(?:am|pm)\b|\b(?:0?[89]|1[0-9]):\d\d\b"),
    ("time", _TIME),
)
GENERIC_TOKENS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "shell",
        frozenset(
            {
                "$",
                "sudo",
                "ssh",
                "df",
                "du",
                "rm",
                "systemctl",
                "journalctl",
                "logrotate",
                "kubectl",
                "helm",
                "docker",
                "truncate",
                "grep",
                "cd",
                "vi",
                "#",
            }
        ),
    ),
    (
        "weekday",
        frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}),
    ),
    ("tonight", frozenset({"tonight", "midnight"})),
    ("daypart", frozenset({"afternoon", "morning", "lunch", "noon"})),
    ("tomorrow", frozenset({"tomorrow"})),
    ("today", frozenset({"today"})),
    ("question", frozenset({"?"})),
    ("person_rahul", frozenset({"rahul"})),
    ("person_priya", frozenset({"priya"})),
    ("person_sundar", frozenset({"sundar"})),
    ("person_david", frozenset({"david"})),
)
NEXT_WEEK = frozenset(
    {"week", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "sprint"}
)
BARE_YES = frozenset({"yes", "sure", "okay", "fine", "done", "noproblem", "noworries"})
BARE_NO = frozenset({"no", "nope", "nah"})

PRIOR = 1.0
"""Prior weight of a cue on its own action (negated cue: minus this)."""


def compile_cues():
    """Compiled cue tables: ``{event: [(action, regex), ...]}`` and one regex of named generic groups."""
    from wlf_jax.events import ACTION_NAMES, EVENT_IDS

    def one(ev: str, a: int, pats) -> re.Pattern:
        pats = (pats,) if isinstance(pats, str) else tuple(pats)
        # a reply that names the action outright ("decline_async", "both calls now")
        name = ACTION_NAMES[EVENT_IDS.index(ev)][a]
        pats = pats + (re.escape(name), re.escape(name.replace("_", " ")))
        return re.compile(r"(?:(?<=\s)|^)(?:" + "|".join(pats) + r")(?=\W|$)")

    per_event = {
        ev: [(a, one(ev, a, pats)) for a, pats in acts.items()] for ev, acts in CUES.items()
    }
    generic = re.compile("|".join(f"(?P<{name}>{p})" for name, p in GENERIC))
    return per_event, generic
