"""The desk's shared rules, in one place for every app: which ticket states count as open work,
the priority ladder, where sentiment turns negative and very negative, which VIP tiers are high
value, and how long a message may be. Change a rule here and every entry point follows."""

from tickets.models import Priority, TicketStatus, VipTier

# Work still to do: the SLA clock runs (or is paused), routing and escalation find these.
ACTIVE_STATUSES = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.PENDING)

PRIORITY_LADDER = (Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.URGENT)
PRIORITY_RANK: dict[str, int] = {priority: rank for rank, priority in enumerate(PRIORITY_LADDER)}


def priority_raised(priority: str, steps: int) -> str:
    """``steps`` rungs up the ladder, never past urgent."""
    return PRIORITY_LADDER[min(PRIORITY_RANK[priority] + steps, len(PRIORITY_LADDER) - 1)]


# Sentiment scores run from -1 to 1. At or below VERY_NEGATIVE the assistant hands over and an
# escalated ticket goes one priority up; below NEGATIVE a customer counts as unhappy.
VERY_NEGATIVE_SENTIMENT = -0.6
NEGATIVE_SENTIMENT = -0.2
POSITIVE_SENTIMENT = 0.2
VERY_POSITIVE_SENTIMENT = 0.6

# Customers whose unhappiness hands the chat to a person and raises an escalated ticket's priority.
HIGH_VALUE_VIP_TIERS = frozenset({VipTier.GOLD, VipTier.PLATINUM})

# One limit for every message, whoever writes it and through whichever channel (widget, API,
# email, messaging apps): 10,000 characters. The assistant reads the first
# agents.pipeline.ASSISTANT_READS_CHARS of a long one.
MESSAGE_MAX_CHARS = 10_000
