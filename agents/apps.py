import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def _reply_suggest(**kwargs: Any) -> Any:
    from agents.assist import reply_suggest

    return reply_suggest(**kwargs)


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Assistant"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from agents.llm import llm_configured, llm_ping
        from agents.widget import cors_request_allowed
        from monitoring.services import readiness_check_register

        # The widget's endpoints answer CORS for the websites each organization allows.
        check_request_enabled.connect(cors_request_allowed, dispatch_uid="agents_widget_cors")

        # /readyz and ops_status report the LLM endpoint when one is configured.
        readiness_check_register("llm", llm_ping, llm_configured)

        # Replies in an email conversation (the assistant's and agents') go out as threaded mail.
        from agents.email.outbound import email_reply_queue
        from tickets.models import Channel
        from tickets.transport import outbound_route_register

        outbound_route_register(Channel.EMAIL, lambda message: email_reply_queue(message=message))

        # Replies in a messaging conversation go back through the account the customer wrote
        # through (for a ticket opened over the REST API, with no such account, none: the
        # desk then emails the reply as it does for a closed chat).
        from agents.messaging.outbound import messaging_reply_queue

        for channel in (Channel.WHATSAPP, Channel.TELEGRAM, Channel.WECHAT, Channel.SMS, Channel.VOICE, Channel.API):
            outbound_route_register(channel, lambda message: messaging_reply_queue(message=message))

        # The ticket page's suggested replies are drafted by the assistant (loaded when first asked).
        from tickets.services import reply_suggester_register

        reply_suggester_register(_reply_suggest)

    def warm_shared(self) -> None:
        """Read-only and thread-free, so loaded in the gunicorn master before it forks: the
        sentiment models (a lexicon only where none ships) and the language identifier."""
        from agents import language, sentiment

        sentiment.warm()
        language.warm()

    def warm(self) -> None:
        """The LLM client (when one is configured), what ``warm_shared`` loads (already there when
        the gunicorn master loaded it), and the assistant itself: each organization's intent
        model and keyword index, the reading stages run for each, then one whole turn through
        the services, rolled back (``assistant_rehearse``), on each of the chat's turn threads
        (``turns.turn_threads_warm``) and on this one; and the turn's metric series."""
        from agents import llm, pipeline
        from agents.services import assistant_rehearse
        from agents.turns import turn_threads_warm
        from monitoring.metrics import chat_metrics_warm
        from tickets.models import SentimentLabel

        llm.warm()
        self.warm_shared()
        chat_metrics_warm([*(name for name, _ in pipeline.STAGES), "total"], SentimentLabel.values)
        try:
            warmed = pipeline.warm()
            rehearse = (lambda: assistant_rehearse(organization_id=warmed[0])) if warmed else None
            turn_threads_warm(rehearse)
            if rehearse is not None:
                # And on this thread's connection: the pool hands its connections out in turn
                # (first in, first out) to every thread, the turn threads too, so the one warming
                # used goes to a turn soon after boot. Unrehearsed, the second or fourth turn of
                # a fresh worker ran on it ~2-5 ms slower (bench/cold_start.py, issue 14).
                rehearse()
        except Exception:  # a store down at boot: the first turns load what they need instead
            logger.warning("the assistant was not warmed; its first turns will be slower", exc_info=True)
