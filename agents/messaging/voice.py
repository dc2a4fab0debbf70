"""Phone calls through Twilio Voice, with the twilio SDK (signatures and TwiML). Nobody answers
the phone live here: a caller hears the organization's greeting and can leave a voicemail, as
a helpdesk's voicemail line does. Twilio calls the account's webhook URL at each step, told apart
by ``event`` in the query (every request signed with ``X-Twilio-Signature``, URL included):

- no event: a call comes in. The answer is TwiML: the greeting, then ``<Record>`` with
  ``action=…?event=recorded`` and, in English, ``transcribeCallback=…?event=transcribed``.
- ``recorded``: the voicemail is recorded. It becomes the caller's message in a phone
  conversation (the caller found by their number across channels), which is handed to people
  with a ticket whose note links the recording (staff play it on the call's admin page).
- ``transcribed``: Twilio's transcription arrives, as a second message in that conversation.
- ``status`` (the number's status callback): the call ended; a call without a voicemail is a
  missed call, listed for staff under Phone calls.

An agent's answer goes back as a text message from the same number (Twilio Messaging), its
fate reported to ``…?event=message-status``.

Credentials: ``{"account_sid": "AC…", "auth_token": "…"}``; the sender id is the Twilio number."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from agents.messaging.adapters import Inbound, Media, Outgoing, StatusUpdate, WebhookRefused, provider_http, rebased
from agents.messaging.sms import ADAPTER as SMS
from agents.messaging.sms import twilio_message_send, twilio_signature_check

GREETINGS = {
    "en": "Thank you for calling {organization}. Nobody can take your call right now. Please leave a message "
    "after the tone, and we will get back to you.",
    "zh": "感谢致电{organization}。现在无人接听，请在提示音后留言，我们会尽快回复您。",
}
THANKS = {"en": "Thank you. We will get back to you soon. Goodbye.", "zh": "谢谢您的留言，我们会尽快回复您。再见。"}
NO_MESSAGE = {"en": "We did not hear a message. Goodbye.", "zh": "没有收到留言。再见。"}
SPOKEN = {"en": "en-US", "zh": "zh-CN"}
# Twilio's end states of a call (its CallStatus): a call that ends so without a voicemail was missed.
ENDED = {"completed", "busy", "no-answer", "canceled", "failed"}
MAX_VOICEMAIL_SECONDS = 180


@dataclass(frozen=True)
class CallEvent:
    kind: str  # "incoming", "recorded", "transcribed" or "status"
    call_sid: str
    caller: str
    provider_status: str = ""
    duration: int | None = None
    recording_sid: str = ""
    recording_url: str = ""
    recording_seconds: int = 0
    transcription: str = ""


def _number(form: Any, name: str) -> int | None:
    value = form.get(name, "")
    if value == "":
        return None
    try:
        return max(0, int(value))
    except ValueError as exc:
        raise WebhookRefused(400, f"{name} is not a number.") from exc


def _webhook_url(account: Any, event: str = "") -> str:
    base = settings.CONCIERGE_PUBLIC_URL.rstrip("/")
    query = f"?event={event}" if event else ""
    return f"{base}{reverse('messaging-webhook', args=[account.webhook_key])}{query}"


def _twiml(response: Any) -> HttpResponse:
    return HttpResponse(str(response), content_type="text/xml")


class VoiceAdapter:
    provider = "voice"
    channel = "voice"
    max_chars = SMS.max_chars  # answers go back as text messages
    reply_window: timedelta | None = None

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse:
        return HttpResponse("Twilio posts calls here.", status=405, content_type="text/plain")

    def verify(self, account: Any, request: HttpRequest) -> None:
        twilio_signature_check(account, request)

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate | CallEvent]:
        form, event = request.POST, request.GET.get("event", "")
        if event == "message-status":
            return list(SMS.parse(account, request))
        sid, caller = form.get("CallSid", ""), form.get("From", "")
        if not sid or not caller:
            raise WebhookRefused(400, "A Twilio Voice webhook carries CallSid and From.")
        status = form.get("CallStatus", "")
        if event == "":
            return [CallEvent("incoming", sid, caller, status)]
        if event == "recorded":
            return [
                CallEvent(
                    "recorded",
                    sid,
                    caller,
                    status,
                    recording_sid=form.get("RecordingSid", ""),
                    recording_url=form.get("RecordingUrl", ""),
                    recording_seconds=_number(form, "RecordingDuration") or 0,
                )
            ]
        if event == "transcribed":
            text = form.get("TranscriptionText", "") if form.get("TranscriptionStatus") == "completed" else ""
            return [CallEvent("transcribed", sid, caller, status, transcription=text.strip())]
        if event == "status":
            return [CallEvent("status", sid, caller, status, duration=_number(form, "CallDuration"))]
        raise WebhookRefused(400, f"Unknown event '{event}'.")

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        from twilio.twiml.voice_response import VoiceResponse

        event, language = request.GET.get("event", ""), account.language if account.language in GREETINGS else "en"
        spoken = SPOKEN[language]
        response = VoiceResponse()
        if event == "":
            greeting = account.greeting or GREETINGS[language].format(organization=account.organization.name)
            response.say(greeting, language=spoken)
            response.record(
                action=_webhook_url(account, "recorded"),
                method="POST",
                max_length=MAX_VOICEMAIL_SECONDS,
                play_beep=True,
                finish_on_key="#",
                # Twilio transcribes English only: other languages keep the recording alone.
                transcribe=language == "en",
                transcribe_callback=_webhook_url(account, "transcribed") if language == "en" else None,
            )
            response.say(NO_MESSAGE[language], language=spoken)
            response.hangup()
        elif event == "recorded":
            response.say(THANKS[language], language=spoken)
            response.hangup()
        return _twiml(response)

    def send(self, account: Any, outgoing: Outgoing) -> str:
        path = reverse("messaging-webhook", args=[account.webhook_key]) + "?event=message-status"
        return twilio_message_send(account, outgoing, status_path=path)

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]:
        return SMS.fetch_media(account, media)


ADAPTER = VoiceAdapter()


def _call_link(call: Any) -> str:
    base = settings.CONCIERGE_PUBLIC_URL.rstrip("/")
    return base + reverse("admin:agents_voicecall_change", args=[call.pk])


def voice_call_event(*, account: Any, event: CallEvent) -> Any:
    """Record one step of a call (see the module docstring); returns the messaging outcome of
    a voicemail or transcription message, else None. Twilio retrying a step changes nothing."""
    from agents.messaging.inbound import messaging_receive
    from agents.messaging.models import CallStatus, VoiceCall

    try:
        with transaction.atomic():
            call, _ = VoiceCall.objects.get_or_create(
                account=account, call_sid=event.call_sid, defaults={"caller": event.caller}
            )
    except IntegrityError:  # the same call's step arrived twice at once
        call = VoiceCall.objects.get(account=account, call_sid=event.call_sid)
    with transaction.atomic():
        call = VoiceCall.objects.select_for_update().get(pk=call.pk)
        received = None
        if event.provider_status:
            call.provider_status = event.provider_status[:20]
        if event.kind == "recorded" and event.recording_url and event.recording_seconds > 0:
            call.status = CallStatus.VOICEMAIL
            call.recording_sid, call.recording_url = event.recording_sid[:64], event.recording_url[:500]
            call.recording_seconds = event.recording_seconds
            call.save()
            text = f"Voicemail from {event.caller}, {event.recording_seconds} s.\nListen: {_call_link(call)}"
            received = messaging_receive(account=account, inbound=_inbound(event, "voicemail", text))
        elif event.kind == "transcribed" and event.transcription:
            call.transcription = event.transcription
            call.save()
            text = f"Voicemail transcription: {event.transcription}"
            received = messaging_receive(account=account, inbound=_inbound(event, "transcription", text))
        elif event.kind == "status":
            call.duration = event.duration
            if event.provider_status in ENDED:
                call.ended_at = call.ended_at or timezone.now()
                if call.status == CallStatus.RINGING:
                    call.status = CallStatus.MISSED
        if received is not None and received.conversation_id and call.conversation_id is None:
            call.conversation_id = received.conversation_id
        call.save()
    return received


def _inbound(event: CallEvent, part: str, text: str) -> Inbound:
    return Inbound(
        provider_message_id=f"{event.call_sid}:{part}",
        address=event.caller,
        text=text,
        verified_phone=event.caller.startswith("+"),  # the carrier's caller id, as Twilio passes it
    )


def voice_recording_fetch(*, call: Any) -> tuple[bytes, str]:
    """The voicemail's audio from Twilio (with the account's credentials), for staff to play."""
    account = call.account
    url = rebased(call.recording_url + ".mp3", settings.CONCIERGE_TWILIO_API_URL)
    auth = (account.secret("account_sid"), account.secret("auth_token"))
    response = provider_http().get(url, auth=auth, follow_redirects=True)
    response.raise_for_status()
    return response.content, response.headers.get("content-type", "audio/mpeg")
