"""Signed widget session tokens: which organization, customer and conversation a websocket
may reach. Signed with SECRET_KEY; valid for CONCIERGE_WIDGET_TOKEN_MAX_AGE seconds."""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "concierge.widget-session"


@dataclass(frozen=True)
class WidgetSession:
    organization_id: int
    customer_id: int
    conversation_id: int
    identified: bool = False  # a company's signed-in user, verified by identify()


def widget_token_issue(session: WidgetSession) -> str:
    return signing.dumps(
        {"o": session.organization_id, "u": session.customer_id, "c": session.conversation_id, "i": session.identified},
        salt=SALT,
    )


def widget_token_read(token: str) -> WidgetSession | None:
    """The session a token grants, or None when it is missing, forged or expired."""
    if not token or len(token) > 500:
        return None
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.CONCIERGE_WIDGET_TOKEN_MAX_AGE)
        return WidgetSession(int(data["o"]), int(data["u"]), int(data["c"]), bool(data.get("i", False)))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
