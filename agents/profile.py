# Chinese texts use Chinese punctuation on purpose.
# ruff: noqa: RUF001
"""Facts about the organization itself (opening hours, how to reach a person, where it is)
answered from its profile in admin rather than from an article: what the business hours,
the contact fields and the email channel say now, in the customer's language."""

import re
from dataclasses import dataclass, field
from typing import Any

TOPICS: dict[str, re.Pattern[str]] = {
    "hours": re.compile(
        r"\b(opening|business|office|support|customer service) (hours|times)\b|\bwhen are you open\b"
        r"|\bare you open\b|\bwhat time do you (open|close)\b|\bhours of (business|operation)\b"
        r"|营业时间|工作时间|客服时间|几点(开门|关门|上班|下班)|什么时候(上班|营业|有人)",
        re.IGNORECASE,
    ),
    "contact": re.compile(
        r"\bhow (can|do) i (contact|reach|call|email) (you|your|support|the team)\b|\byour (phone|telephone) number\b"
        r"|\b(phone|telephone) number (for|of) (support|you|customer service)\b|\bcontact (details|information|info)\b"
        r"|\bsupport email\b|\bemail address (for|of) (support|you|customer service)\b"
        r"|联系方式|客服电话|电话号码|客服邮箱|怎么联系你们|如何联系",
        re.IGNORECASE,
    ),
    "address": re.compile(
        r"\byour (address|location|office|headquarters)\b|\bwhere are you (located|based)\b"
        r"|\b(office|store|shop|company) address\b|你们的?地址|公司地址|门店地址|办公地址",
        re.IGNORECASE,
    ),
}

WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "zh": ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
}
TEXTS = {
    "en": {
        "hours": "We're open {hours} ({zone} time).",
        "always": "Our team works around the clock, every day.",
        "contact": "You can reach us {ways}. I can also pass this chat to a person right now.",
        "email": "by email at {value}",
        "phone": "by phone on {value}",
        "address": "Our address is {value}.",
        "and": " or ",
        "to": " to ",
        "join": ", ",
    },
    "zh": {
        "hours": "我们的营业时间是{hours}（{zone}时间）。",
        "always": "我们的客服团队全天24小时、每天都在。",
        "contact": "您可以{ways}联系我们。我也可以现在就为您转接人工客服。",
        "email": "发邮件到 {value} ",
        "phone": "拨打电话 {value} ",
        "address": "我们的地址是：{value}。",
        "and": "或",
        "to": "至",
        "join": "，",
    },
}


@dataclass(frozen=True)
class OrganizationProfile:
    """What the assistant may say about the organization (plain data, read in agents.services)."""

    timezone: str = "UTC"
    hours: list[tuple[int, str, str]] = field(default_factory=list)  # (weekday, "09:00", "17:00"), Monday = 0
    email: str = ""
    phone: str = ""
    address: str = ""


def profile_topic(text: str) -> str:
    """Which fact about the organization the message asks for ("" when none)."""
    return next((topic for topic, pattern in TOPICS.items() if pattern.search(text)), "")


def _hours_text(hours: list[tuple[int, str, str]], language: str) -> str:
    """Weekdays with the same intervals joined into ranges: "Monday to Friday 09:00-17:00"."""
    texts = TEXTS.get(language, TEXTS["en"])
    names = WEEKDAYS.get(language, WEEKDAYS["en"])
    by_day: dict[int, str] = {}
    for weekday, opens, closes in sorted(hours):
        interval = f"{opens}-{closes}"
        by_day[weekday] = f"{by_day[weekday]}{texts['join']}{interval}" if weekday in by_day else interval
    runs: list[tuple[int, int, str]] = []
    for weekday in sorted(by_day):
        if runs and runs[-1][1] == weekday - 1 and runs[-1][2] == by_day[weekday]:
            runs[-1] = (runs[-1][0], weekday, by_day[weekday])
        else:
            runs.append((weekday, weekday, by_day[weekday]))
    parts = []
    for first, last, intervals in runs:
        days = names[first] if first == last else f"{names[first]}{texts['to']}{names[last]}"
        parts.append(f"{days} {intervals}")
    return texts["join"].join(parts)


def profile_reply(topic: str, profile: OrganizationProfile, language: str) -> str:
    """The answer from the profile, or "" when the profile does not hold that fact."""
    texts = TEXTS.get(language, TEXTS["en"])
    if topic == "hours":
        if not profile.hours:
            return texts["always"]
        return texts["hours"].format(hours=_hours_text(profile.hours, language), zone=profile.timezone)
    if topic == "contact":
        given = (("email", profile.email), ("phone", profile.phone))
        ways = [texts[kind].format(value=value).strip() for kind, value in given if value]
        return texts["contact"].format(ways=texts["and"].join(ways)) if ways else ""
    if topic == "address" and profile.address:
        return texts["address"].format(value=" ".join(profile.address.split()))
    return ""


def profile_read(organization_id: int) -> OrganizationProfile:
    """The organization's profile now, read at most every ACTIVE_CHECK_SECONDS per process."""
    from agents.active_models import recent_read

    def read() -> OrganizationProfile:
        from agents.models import EmailChannel
        from tenancy.models import BusinessHours, Organization

        organization = Organization.objects.filter(pk=organization_id).first()
        if organization is None:
            return OrganizationProfile()
        hours = [
            (weekday, f"{opens:%H:%M}", f"{closes:%H:%M}")
            for weekday, opens, closes in BusinessHours.objects.filter(organization_id=organization_id).values_list(
                "weekday", "opens", "closes"
            )
        ]
        channel: Any = EmailChannel.objects.filter(organization_id=organization_id).values_list("address", flat=True)
        return OrganizationProfile(
            timezone=organization.timezone or "UTC",
            hours=hours,
            email=organization.contact_email or next(iter(channel), ""),
            phone=organization.contact_phone,
            address=organization.address,
        )

    return recent_read("profile", organization_id, read)
