"""The widget load client shared by chat_load.py and soak.py: N concurrent conversations,
each a widget session and a websocket, sending a question at human pace and waiting for the
bot's reply. It behaves like widget.js: on a dropped connection it reconnects, resumes from
the last sequence number it saw and resends its unacknowledged message under the same client
id (stored once by the server); a message refused with a ``busy`` frame is sent again after the
frame's retry_after (with jitter), under the same id.

Turn latency runs from the accepted send to the bot's reply; ``wait_ms`` from the first try
(refusals and retries included)."""

import asyncio
import json
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import uvloop
import websockets

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop's event loop (the one the web workers run, installed with
    uvicorn). The load client shares the two cores with what it measures: at ~34 turns/s it took
    1.1-1.2 ms of CPU a turn on asyncio's own loop (bench/chat_cpu.py), the more it takes the less
    the server gets."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# Questions the demo knowledge base answers (none asks for a person, so the bot keeps answering).
QUESTIONS = [
    "when will I get my refund?",
    "how much is membership?",
    "my tent pole snapped, is that covered by warranty?",
    "can I rent skis?",
    "do you take paypal?",
    "how long does shipping take?",
    "how do I return boots that don't fit?",
    "I forgot my password",
]


@dataclass
class Conversation:
    token: str
    conversation_id: int
    sent: int = 0
    acked: int = 0
    replies: int = 0
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0
    handoff: bool = False
    last_seq: int = 0
    refused: int = 0
    trouble_at: list[float] = field(default_factory=list)  # time.monotonic() of each refusal and error
    latencies_ms: list[float] = field(default_factory=list)
    waits_ms: list[float] = field(default_factory=list)
    replied_at: list[float] = field(default_factory=list)  # time.monotonic() of each reply, as latencies_ms


@dataclass
class Pace:
    """A stepped ramp's pace, shared by conversations held open from step to step: the ones
    still talking (not handed to a person) ask ``rate`` questions a second in all.

    It keeps a clock that counts the questions each conversation has been due since the start
    (``rate / talking`` a second). A conversation's next question is due when that clock has
    moved on by a think share (0.5-1.5, drawn at the question before) from when it first sent
    the last one, or at once if the reply came later: the rate asked does not fall as replies
    slow down, and when the pace changes the waits left shrink or grow with it (no burst)."""

    rate: float
    talking: int
    since: float = field(default_factory=time.monotonic)  # the clock's last change of speed
    counted: float = 0.0  # the clock then
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def clock(self) -> float:
        return self.counted + (time.monotonic() - self.since) * self.rate / self.talking

    def _rebase(self) -> None:
        self.counted, self.since = self.clock(), time.monotonic()

    def due(self, mark: float) -> float:
        """When the clock reaches ``mark`` at this pace (time.monotonic())."""
        return self.since + (mark - self.counted) * self.talking / self.rate

    async def until(self, mark: float) -> None:
        while (delay := self.due(mark) - time.monotonic()) > 0:
            changed = self.changed
            try:
                async with asyncio.timeout(delay):
                    await changed.wait()
            except TimeoutError:
                return

    def set_rate(self, rate: float) -> None:
        self._rebase()
        self.rate = rate
        self.changed.set()  # every waiting conversation works out its due time again
        self.changed = asyncio.Event()

    def seats(self, change: int) -> None:
        """Conversations stop talking (handed to a person) or join."""
        self._rebase()
        self.talking += change


@dataclass
class LoadStats:
    conversations: list[Conversation] = field(default_factory=list)
    connect_failures: int = 0
    until: float = 0.0  # when the conversations stopped asking (time.monotonic())

    def latencies_between(self, start: float, end: float) -> list[float]:
        """The bot-turn latencies of the replies that came between ``start`` and ``end``."""
        return [
            ms
            for c in self.conversations
            for at, ms in zip(c.replied_at, c.latencies_ms, strict=True)
            if start <= at < end
        ]

    def summary(self) -> dict[str, Any]:
        from bench.stack import percentile

        latencies = [ms for c in self.conversations for ms in c.latencies_ms]
        waits = [ms for c in self.conversations for ms in c.waits_ms]
        return {
            "conversations": len(self.conversations),
            "connect_failures": self.connect_failures,
            "messages_sent": sum(c.sent for c in self.conversations),
            "acked": sum(c.acked for c in self.conversations),
            "bot_replies": sum(c.replies for c in self.conversations),
            "handoffs": sum(1 for c in self.conversations if c.handoff),
            "reconnects": sum(c.reconnects for c in self.conversations),
            "refused_busy": sum(c.refused for c in self.conversations),
            "errors": sum(len(c.errors) for c in self.conversations),
            "error_samples": [e for c in self.conversations for e in c.errors][:5],
            "turn_ms": {
                "count": len(latencies),
                "p50": percentile(latencies, 0.50),
                "p95": percentile(latencies, 0.95),
                "p99": percentile(latencies, 0.99),
                "max": round(max(latencies), 2) if latencies else None,
            },
            "wait_ms": {"p50": percentile(waits, 0.50), "p95": percentile(waits, 0.95), "p99": percentile(waits, 0.99)},
        }


async def open_sessions(
    base_url: str, widget_key: str, count: int, parallel: int = 32, first: int = 0
) -> list[Conversation]:
    semaphore = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession() as http:

        async def one(n: int) -> Conversation:
            async with semaphore:
                body = {"widget_key": widget_key, "name": f"Load {n}", "email": f"load{n}@bench.example"}
                async with http.post(f"{base_url}/api/v1/widget/sessions", json=body) as response:
                    data = await response.json()
                    if response.status != 201:
                        raise RuntimeError(f"session: {response.status} {data}")
                    return Conversation(token=data["token"], conversation_id=data["conversation_id"])

        return list(await asyncio.gather(*(one(first + n) for n in range(count))))


async def converse(
    base_url: str,
    conversation: Conversation,
    *,
    until: float,
    think: tuple[float, float],
    start_after: float,
    reply_timeout: float = 60.0,
    pace: Pace | None = None,
) -> None:
    """Talk until the deadline: wait, ask, wait for the reply; reconnect and resume on drops.
    With ``pace``, the think times come from it (``think`` is not read) and count from a
    question's first send, not from its reply."""
    ws_url = base_url.replace("http", "ws", 1) + f"/ws/chat/?token={conversation.token}"
    await asyncio.sleep(start_after)
    pending: tuple[str, str, float, float] | None = None  # (client id, text, sent at, first tried at)
    resend_at: float | None = None  # refused as busy: send the pending message again then
    next_at = time.monotonic() + random.uniform(*think) * random.random()
    mark = pace.clock() + random.uniform(0.5, 1.5) * random.random() if pace else 0.0
    while time.monotonic() < until or pending is not None:
        try:
            async with websockets.connect(ws_url, origin=base_url, open_timeout=30, ping_interval=None,
                                          max_queue=None) as ws:  # fmt: skip
                if conversation.last_seq or pending:
                    await ws.send(json.dumps({"type": "resume", "after": conversation.last_seq}))
                if pending is not None and resend_at is None:
                    await ws.send(json.dumps({"type": "message", "id": pending[0], "text": pending[1]}))
                while True:
                    if pending is not None and resend_at is not None:
                        await asyncio.sleep(max(0.0, resend_at - time.monotonic()))
                        resend_at = None
                        pending = (pending[0], pending[1], time.monotonic(), pending[3])
                        await ws.send(json.dumps({"type": "message", "id": pending[0], "text": pending[1]}))
                    if pending is None:
                        if time.monotonic() >= until or conversation.handoff:
                            return
                        if pace is None:
                            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                        else:
                            await pace.until(mark)
                        client_id = f"m{conversation.sent + 1}"
                        text = random.choice(QUESTIONS)
                        now = time.monotonic()
                        pending = (client_id, text, now, now)
                        if pace is not None:
                            mark = pace.clock() + random.uniform(0.5, 1.5)
                        conversation.sent += 1
                        await ws.send(json.dumps({"type": "message", "id": client_id, "text": text}))
                    remaining = pending[3] + reply_timeout - time.monotonic()
                    if remaining <= 0:
                        conversation.errors.append(f"no reply to {pending[0]} in {reply_timeout:.0f} s")
                        conversation.trouble_at.append(time.monotonic())
                        pending = None
                        continue
                    async with asyncio.timeout(remaining):  # no task a frame, as wait_for makes
                        frame = json.loads(await ws.recv())
                    if frame.get("type") == "ack" and frame.get("id") == pending[0]:
                        conversation.acked += 1
                    elif frame.get("type") == "message":
                        conversation.last_seq = max(conversation.last_seq, frame["seq"])
                        if frame["role"] == "bot" and pending is not None:
                            conversation.replies += 1
                            now = time.monotonic()
                            conversation.latencies_ms.append((now - pending[2]) * 1000)
                            conversation.replied_at.append(now)
                            conversation.waits_ms.append((now - pending[3]) * 1000)
                            conversation.handoff = bool(frame.get("handoff"))
                            next_at = now + random.uniform(*think)
                            if pace is not None and conversation.handoff:
                                pace.seats(-1)
                            pending = None
                    elif frame.get("type") == "error" and frame.get("code") == "busy" and pending is not None:
                        conversation.refused += 1
                        conversation.trouble_at.append(time.monotonic())
                        resend_at = time.monotonic() + float(frame.get("retry_after") or 1) * random.uniform(1.0, 1.5)
                    elif frame.get("type") == "error":
                        conversation.errors.append(f"{frame.get('code')}: {frame.get('message')}")
                        conversation.trouble_at.append(time.monotonic())
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
            conversation.reconnects += 1
            if conversation.reconnects > 50:
                conversation.errors.append(f"gave up after reconnecting: {type(exc).__name__}")
                conversation.trouble_at.append(time.monotonic())
                return
            await asyncio.sleep(min(5.0, 0.2 * conversation.reconnects))


async def run_load(
    base_url: str,
    widget_key: str,
    *,
    conversations: int,
    duration: float,
    ramp: float,
    think: tuple[float, float],
) -> LoadStats:
    stats = LoadStats(conversations=await open_sessions(base_url, widget_key, conversations))
    until = stats.until = time.monotonic() + ramp + duration
    await asyncio.gather(
        *(
            converse(base_url, c, until=until, think=think, start_after=ramp * n / max(1, conversations))
            for n, c in enumerate(stats.conversations)
        )
    )
    return stats


@dataclass
class Step:
    """One step of a stepped ramp: from ``starts`` the conversations ask ``rate`` turns a second;
    its figures count from ``measured_from`` (the pace settled) to ``ends``."""

    rate: float
    starts: float
    measured_from: float
    ends: float


async def stepped_ramp(
    base_url: str, widget_key: str, *, conversations: int, rates: list[float], seconds: float, settle: float,
    ramp: float = 5.0,
) -> tuple[LoadStats, list[Step]]:  # fmt: skip
    """A stepped ramp over conversations held open throughout: their sessions open first, their
    websockets over ``ramp`` s at the first step's pace (a warm-up of ``settle`` s, not counted),
    then each step raises the pace for ``seconds``, counted after ``settle`` s. A conversation
    handed to a person stops and a new customer takes its seat (a new session and websocket), so
    ``conversations`` keep talking."""
    stats = LoadStats(conversations=await open_sessions(base_url, widget_key, conversations))
    pace = Pace(rate=rates[0], talking=conversations)
    begin = time.monotonic() + ramp + settle
    steps = [Step(rate, begin + n * seconds, begin + n * seconds + settle, begin + (n + 1) * seconds)
             for n, rate in enumerate(rates)]  # fmt: skip
    until = stats.until = steps[-1].ends

    async def conduct() -> None:
        for step in steps:
            await asyncio.sleep(max(0.0, step.starts - time.monotonic()))
            pace.set_rate(step.rate)

    async def seat(conversation: Conversation, start_after: float) -> None:
        while True:
            await converse(base_url, conversation, until=until, think=(0, 0), start_after=start_after, pace=pace)
            if not conversation.handoff or time.monotonic() >= until:
                return
            conversation = (await open_sessions(base_url, widget_key, 1, first=len(stats.conversations)))[0]
            stats.conversations.append(conversation)
            pace.seats(+1)
            start_after = 0.0

    await asyncio.gather(
        conduct(), *(seat(c, ramp * n / conversations) for n, c in enumerate(list(stats.conversations)))
    )
    return stats, steps


def lost_messages(stack: Any, stats: LoadStats) -> dict[str, int]:
    """Compare what clients sent with what the database holds: a message the client counted
    as sent but that is not stored, or a stored customer message with no bot reply after it,
    is lost. Duplicates (stored twice) are counted too."""
    ids = [c.conversation_id for c in stats.conversations]
    rows = stack.sql(
        "SELECT conversation_id, role, count(*), count(DISTINCT client_message_id) FROM tickets_message "
        "WHERE conversation_id = ANY(%s) GROUP BY conversation_id, role",
        (ids,),
    )
    stored: dict[tuple[int, str], tuple[int, int]] = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    not_stored = unanswered = duplicates = 0
    for c in stats.conversations:
        customer, distinct = stored.get((c.conversation_id, "customer"), (0, 0))
        bot = stored.get((c.conversation_id, "bot"), (0, 0))[0]
        not_stored += max(0, c.sent - customer)
        duplicates += customer - distinct
        unanswered += max(0, customer - bot) if not c.handoff else 0
    return {"not_stored": not_stored, "unanswered": unanswered, "duplicates": duplicates}
