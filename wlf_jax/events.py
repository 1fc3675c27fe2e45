"""The event catalogue: one source for every event's id, sender, text and action names.

The simulator indexes events and actions by position in this catalogue; the prompts, the
decoders, the terminal UI, the server and the docs read the text from here.  Events 0-6 are
the seven base events of the week; events 7-12 exist only when an earlier choice (or bad
luck) spawns them (preset ``week_v2``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    """One of the three things Arjun can do about an event."""

    name: str
    meaning: str


@dataclass(frozen=True)
class EventSpec:
    """One workplace event: who sends it, through which channel, and what it says."""

    id: str
    title: str
    sender: str
    channel: str
    stakeholder: str  # whose register the reply should fit: client, manager, peer, system, hr
    body: str
    actions: tuple[ActionSpec, ActionSpec, ActionSpec]
    spawned: bool = False


STAKEHOLDERS: tuple[str, ...] = ("david_chen", "sundar", "priya", "rahul", "arjun")
"""Trust is tracked for these five people (client, manager, two peers, the teammate)."""

DAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")

STATUS_NAMES: tuple[str, ...] = ("staging", "leave", "appraisal", "oncall", "sleep_debt")
"""Discrete status variables of the week and the meaning of their values."""

STATUS_VALUES: dict[str, tuple[str, ...]] = {
    "staging": ("broken", "fixed"),
    "leave": ("pending", "approved", "cancelled"),
    "appraisal": ("not_done", "done", "extended"),
    "oncall": ("not_accepted", "accepted"),
    "sleep_debt": ("rested", "sleep_debt"),
}

# Indices into ``EnvState.status`` (the one place they are written down), and the values the
# rubric asks for: staging "fixed", leave "approved", appraisal "done", on-call "accepted".
STAGING, LEAVE, APPRAISAL, ONCALL, SLEEP_DEBT = (
    STATUS_NAMES.index(n) for n in ("staging", "leave", "appraisal", "oncall", "sleep_debt")
)
FIXED = STATUS_VALUES["staging"].index("fixed")
APPROVED = STATUS_VALUES["leave"].index("approved")
DONE = STATUS_VALUES["appraisal"].index("done")
ACCEPTED = STATUS_VALUES["oncall"].index("accepted")
STATUS_SIZES: tuple[int, ...] = tuple(len(STATUS_VALUES[n]) for n in STATUS_NAMES)
"""Number of values of each status variable, in ``STATUS_NAMES`` order."""


def _a(name: str, meaning: str) -> ActionSpec:
    return ActionSpec(name, meaning)


EVENTS: tuple[EventSpec, ...] = (
    EventSpec(
        id="E1_staging",
        title="CRITICAL: staging disk at 98%, deploys failing",
        sender="PagerDuty",
        channel="pagerduty",
        stakeholder="system",
        body=(
            "[PagerDuty] #INC-4417 CRITICAL - staging-api-01: disk usage on /var at 98% "
            "(threshold 90%)\n"
            "Service: staging-platform | Urgency: high | Triggered: Mon 08:12 IST\n"
            "Details: deploys to staging fail with 'No space left on device'; /var/log/app is "
            "41 GB (log rotation last ran 9 days ago). 4 engineers blocked on release/2.14.\n"
            "Escalation policy: platform-primary -> you. Runbook: wiki/staging-disk-full\n"
            "[Acknowledge] [Resolve] [Reassign]"
        ),
        actions=(
            _a("fix_directly", "SSH in, clear the logs, restart the service and fix it yourself"),
            _a("delegate_oncall", "Hand it to the on-call engineer (Rahul) with a short brief"),
            _a("escalate_infra", "Raise a ticket with the infra team and let them handle it"),
        ),
    ),
    EventSpec(
        id="E2_slack",
        title="Two quick calls, right now?",
        sender="Priya and Rahul",
        channel="slack",
        stakeholder="peer",
        body=(
            "#team-platform, 10:41 AM\n"
            "Priya: hey Arjun, got 15 min for a quick call on the auth module? token refresh "
            "is acting weird on the mobile client, refresh tokens expire after 5 min instead "
            "of 24h \U0001f605\n"
            "Rahul: +1, also need you on the API spec review before I merge the v2 endpoints. "
            "can we hop on a call now-ish? huddle link: meet/plat-sync\n"
            "Priya: @Arjun ping"
        ),
        actions=(
            _a("async_boundary", "Reply with async answers now and offer a slot later in the day"),
            _a("both_calls_now", "Drop everything and take both calls immediately"),
            _a("ignore_slack", "Leave the messages unanswered"),
        ),
    ),
    EventSpec(
        id="E3_client_email",
        title="Re: Re: Dashboard latency - any update?",
        sender="David Chen (client, US)",
        channel="email",
        stakeholder="client",
        body=(
            "Subject: Re: Re: Dashboard latency - any update?\n\n"
            "Hi Arjun,\n\n"
            "Following up again on the dashboard latency issue (third time this month). Our ops "
            "team is seeing 8-second loads on the main Fleet Overview page, mostly in the "
            "mornings US Eastern, and my VP asked me for a date in our Tuesday review.\n\n"
            "Can you tell me where this stands, what the cause is, and when we can realistically "
            "expect a fix? Even a rough plan would help me manage expectations on our side.\n\n"
            "Thanks,\nDavid Chen\nDirector of Operations Engineering"
        ),
        actions=(
            _a("acknowledge_timeline", "Acknowledge the issue and give a realistic timeline"),
            _a("full_apology", "Apologise profusely and promise a fix as fast as possible"),
            _a("cc_manager", "Reply briefly and cc your manager to share the pressure"),
        ),
    ),
    EventSpec(
        id="E4_leave",
        title="Reminder: leave request for Thursday still pending",
        sender="HR portal",
        channel="hr",
        stakeholder="manager",
        body=(
            "HR Portal - automated reminder\n"
            "Your leave request LV-2291 (Thursday, 1 day, personal: family function) has been "
            "pending approval for 92 days.\n"
            "Approver: Sundar (Engineering Manager). Status: Awaiting approval.\n"
            "Note: requests not actioned by the approver before the leave date lapse "
            "automatically and the day is marked as unplanned absence."
        ),
        actions=(
            _a("ping_sundar", "Ping Sundar today and ask him to approve the leave"),
            _a("wait_hope", "Wait and hope it gets approved on its own"),
            _a("cancel_leave", "Cancel the leave to avoid bothering anyone"),
        ),
    ),
    EventSpec(
        id="E5_appraisal",
        title="Self-appraisal due Friday",
        sender="HR portal",
        channel="hr",
        stakeholder="manager",
        body=(
            "HR Portal - Performance cycle FY25\n"
            "Reminder: your annual self-appraisal is due this Friday, 18:00 IST. 12 sections "
            "(goals, impact, peer feedback, growth plan), estimated time 90 minutes. Your "
            "progress: 0 of 12 sections.\n"
            "Late submissions will not be considered in this cycle's calibration."
        ),
        actions=(
            _a("block_wednesday", "Block a calendar slot on Wednesday afternoon to write it"),
            _a("rush_tonight", "Rush it tonight after work"),
            _a("ask_extension", "Ask HR for an extension"),
        ),
    ),
    EventSpec(
        id="E6_oncall",
        title="Can you take my on-call Wednesday night? (third ask)",
        sender="Arjun (teammate)",
        channel="slack",
        stakeholder="peer",
        body=(
            "Direct message, 4:52 PM\n"
            "Arjun (teammate): hey, really sorry to ask again \U0001f64f can you cover my on-call "
            "Wednesday night (8 PM - 8 AM)? family thing came up. I know you covered the last "
            "two, I owe you big time. I can put it in the rota sheet if you say ok"
        ),
        actions=(
            _a("no_clearly_kindly", "Decline clearly and kindly"),
            _a("yes_people_pleaser", "Say yes again"),
            _a("counter_offer", "Offer a swap: you cover his shift if he takes one of yours"),
        ),
    ),
    EventSpec(
        id="E7_standup",
        title="Optional: client standup 10:30 PM IST",
        sender="Calendar (David Chen)",
        channel="calendar",
        stakeholder="client",
        body=(
            "Invitation: Dashboard latency sync (optional)\n"
            "When: Tonight, 10:30 PM - 11:15 PM IST (12:00 PM - 12:45 PM US Eastern)\n"
            "Organizer: David Chen | Guests: Sundar, Priya, you (optional)\n"
            "Note from organizer: 'Optional, but it would be great to have engineering there to "
            "walk us through the latency numbers.'\n"
            "Going? [Yes] [No] [Maybe]"
        ),
        actions=(
            _a("decline_async", "Decline and send a written async update instead"),
            _a("attend_sacrifice", "Attend the late standup"),
            _a("delegate_teammate", "Ask Priya to attend in your place"),
        ),
    ),
    # ---- spawned events (week_v2) -------------------------------------------------------
    EventSpec(
        id="S1_staging_relapse",
        title="CRITICAL (re-triggered): staging disk at 99%",
        sender="PagerDuty",
        channel="pagerduty",
        stakeholder="system",
        body=(
            "[PagerDuty] #INC-4431 CRITICAL (re-triggered) - staging-api-01: disk usage on "
            "/var at 99%\n"
            "Related: #INC-4417 (resolved Monday). The log rotation change did not hold; "
            "/var/log/app grew 30 GB overnight. Release/2.14 deploys blocked again.\n"
            "Escalation policy: platform-primary -> you."
        ),
        actions=(
            _a("take_over_fix", "Take it over and fix the root cause yourself"),
            _a("pair_with_rahul", "Pair with Rahul for an hour and fix it together"),
            _a("roll_back_release", "Roll staging back and defer the release"),
        ),
        spawned=True,
    ),
    EventSpec(
        id="S2_slack_followup",
        title="Escalation: no reply on auth and API spec",
        sender="Sundar (manager), cc Priya and Rahul",
        channel="slack",
        stakeholder="manager",
        body=(
            "#team-platform, thread\n"
            "Sundar: @Arjun, Priya and Rahul say they've been waiting on you since yesterday "
            "for the auth module and the API spec review, and the v2 merge is now slipping. "
            "Can you unblock them today? Let me know what you need from me."
        ),
        actions=(
            _a("own_and_schedule", "Own the miss and put a fixed slot on the calendar"),
            _a("calls_all_day", "Spend the afternoon on calls with both of them"),
            _a("keep_ignoring", "Keep ignoring it"),
        ),
        spawned=True,
    ),
    EventSpec(
        id="S3_client_reescalation",
        title="Escalation: the promised fix is not there",
        sender="David Chen (client, US), cc his VP",
        channel="email",
        stakeholder="client",
        body=(
            "Subject: Re: Re: Re: Dashboard latency - escalation\n\n"
            "Arjun,\n\n"
            "On Monday you told me this would be fixed 'as fast as possible'. It's Thursday and "
            "the Fleet Overview page still takes 8 seconds. I've looped in my VP, who is asking "
            "whether we should bring this up in the renewal discussion.\n\n"
            "I need a real plan today: what is being done, by whom, and by when.\n\n"
            "David"
        ),
        actions=(
            _a("honest_plan", "Send an honest status with a realistic, dated plan"),
            _a("promise_again", "Promise again that it will be fixed by tomorrow"),
            _a("hand_to_manager", "Hand the thread over to Sundar"),
        ),
        spawned=True,
    ),
    EventSpec(
        id="S4_leave_conflict",
        title="Leave clashes with the release",
        sender="Sundar (manager)",
        channel="slack",
        stakeholder="manager",
        body=(
            "Direct message, Wednesday 11:05 AM\n"
            "Sundar: hey Arjun, just saw your leave request for Thursday - sorry it sat in my "
            "queue. Thursday is release day for 2.14 though. Can we talk about moving it? Let me "
            "know today so I can plan cover."
        ),
        actions=(
            _a("hold_with_handover", "Keep the leave and send a concrete handover plan"),
            _a("give_up_leave", "Give up the leave"),
            _a("move_to_next_week", "Move the leave to next week"),
        ),
        spawned=True,
    ),
    EventSpec(
        id="S5_night_incident",
        title="2:14 AM page: payments-api 5xx spike",
        sender="PagerDuty",
        channel="pagerduty",
        stakeholder="system",
        body=(
            "[PagerDuty] #INC-4440 HIGH - payments-api: 5xx error rate 12% over 5 min "
            "(threshold 2%)\n"
            "Triggered: Thu 02:14 IST. You are primary on call (covering for Arjun). "
            "Secondary: Rahul.\n"
            "Runbook: wiki/payments-5xx | Dashboard: grafana/payments\n"
            "[Acknowledge] [Escalate to secondary] [Snooze 4h]"
        ),
        actions=(
            _a("handle_alone", "Get up and handle it alone until it is resolved"),
            _a("wake_secondary", "Mitigate and hand over to the secondary on-call"),
            _a("snooze_alert", "Snooze the alert until the morning"),
        ),
        spawned=True,
    ),
    EventSpec(
        id="S6_thursday_exhaustion",
        title="Thursday: three hours of sleep, sprint review at 11",
        sender="Your own body",
        channel="self",
        stakeholder="manager",
        body=(
            "07:40 AM. You slept three hours after the night incident and your head is "
            "pounding. The sprint review is at 11:00, two of your stories are still open, and "
            "Sundar has asked everyone to demo their own work."
        ),
        actions=(
            _a("take_half_day", "Tell Sundar and take the afternoon off to recover"),
            _a("push_through", "Push through the day on coffee"),
            _a("ask_cover", "Ask Rahul to present your stories at the review"),
        ),
        spawned=True,
    ),
)

N_EVENTS: int = len(EVENTS)
N_ACTIONS: int = 3
N_STAKEHOLDERS: int = len(STAKEHOLDERS)
N_STATUS: int = len(STATUS_NAMES)
N_BASE_EVENTS: int = sum(not e.spawned for e in EVENTS)

EVENT_IDS: tuple[str, ...] = tuple(e.id for e in EVENTS)
ACTION_NAMES: tuple[tuple[str, str, str], ...] = tuple(
    tuple(a.name for a in e.actions)
    for e in EVENTS  # type: ignore[misc]
)


def event_index(event_id: str) -> int:
    """Index of an event id such as ``"E4_leave"``; raises ``KeyError`` with the known ids."""
    try:
        return EVENT_IDS.index(event_id)
    except ValueError:
        raise KeyError(f"unknown event {event_id!r}; known: {', '.join(EVENT_IDS)}") from None


def action_index(event_id: str, action_name: str) -> int:
    """Index (0, 1, 2) of an action name of an event."""
    names = ACTION_NAMES[event_index(event_id)]
    try:
        return names.index(action_name)
    except ValueError:
        raise KeyError(
            f"unknown action {action_name!r} for {event_id}; known: {', '.join(names)}"
        ) from None
