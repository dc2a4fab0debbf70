# Chinese texts use Chinese punctuation on purpose.
# ruff: noqa: RUF001, RUF002
"""The conversation side of the assistant: follow-ups resolved against the recent turns, the
entities a conversation carries (order numbers, email addresses), replies composed from the
sentences of a passage that answer the question, and every text the assistant says in the
customer's language (English or Simplified Chinese).

Pure functions over plain data: the pipeline calls them, nothing here reads the database."""

import re
from dataclasses import dataclass
from typing import Any

# --- what the assistant says, per language ------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hi! I'm the {organization} assistant. Ask me anything: I answer from our help articles, "
        "and I can bring in a person whenever you like.",
        "goodbye": "Glad I could help. Have a great day!",
        "thanks": "You're welcome! Is there anything else I can help with?",
        "handoff": "I'm passing this conversation to a member of our support team now; they can see everything "
        "you've written. Someone will reply here shortly.",
        "dont_know": "I'm not sure about that, and I'd rather not guess. Would you like me to connect you with a "
        'person? Just say "human".',
        "acknowledge": "I'm sorry about this, and I understand why you're frustrated.",
        "not_covered": "I couldn't find anything about {names} specifically. Here is what our help articles say:",
        "ask_order": "I can look that up. What is your order number?",
        "ask_email": "I can look that up. Which email address is it about?",
        "ask_input": "I can do that. Could you tell me the {name}?",
        "action_result": "Here is what I found: {fields}.",
        "action_failed": "I couldn't get that from our systems just now.",
        "action_not_found": "I couldn't find {value} in our systems. Could you check it and send it again?",
        "action_identify": "I can only do that for customers who are signed in, so a colleague will help you with it.",
    },
    "zh": {
        "greeting": "您好！我是{organization}的智能助手。我会根据帮助文章回答您的问题，"
        "需要时也可以随时为您转接人工客服。",
        "goodbye": "很高兴能帮到您，祝您生活愉快！",
        "thanks": "不客气！还有什么可以帮您的吗？",
        "handoff": "我现在把对话转给我们的客服同事，他们能看到您写的所有内容，很快会在这里回复您。",
        "dont_know": "这个问题我不太确定，不想随便猜。需要我为您转接人工客服吗？请回复“人工”。",
        "acknowledge": "非常抱歉给您带来不便，我理解您的心情。",
        "not_covered": "我没有找到关于{names}的具体说明。帮助文章里是这样写的：",
        "ask_order": "我可以帮您查询。请问您的订单号是多少？",
        "ask_email": "我可以帮您查询。请问是哪个邮箱地址？",
        "ask_input": "我可以帮您办理。请告诉我{name}。",
        "action_result": "查询结果：{fields}。",
        "action_failed": "抱歉，我暂时无法从系统中获取这个信息。",
        "action_not_found": "系统中没有找到 {value}。请核对后再发一次。",
        "action_identify": "这项操作需要您先登录，我会请同事来帮您处理。",
    },
}


def say(key: str, language: str, **values: str) -> str:
    """A system text in the customer's language (English for any language we do not write)."""
    texts = TEXTS.get(language, TEXTS["en"])
    return texts[key].format(**values)


def all_texts(key: str) -> set[str]:
    return {texts[key] for texts in TEXTS.values()}


# --- entities and follow-ups ------------------------------------------------------------

ORDER_NUMBER = re.compile(r"(?:#|\border\s*(?:no\.?|number|#)?\s*|订单号?\s*)(\d{3,12})\b|\b(\d{4,12})\b", re.I)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?", re.I)
HAN = re.compile(r"[\u3400-\u9fff]")

CONNECTORS = re.compile(
    r"^(and|also|plus|but|so|then|ok(ay)?,? and|what about|how about|what if|and if|same for|any|is it|does it)\b",
    re.I,
)
ANAPHORA = {"it", "its", "that", "this", "those", "these", "they", "them", "there", "one", "ones", "same"}
ZH_FOLLOW_UP = re.compile(r"^(那|那么|还有|另外|再问|如果)|(呢|吗)[？?]?$|(它|这个|那个|这些|那些)")
_STOPWORD_TEXT = """a an the and or but so then also plus of to in on at for from by with about into over after before
    is are was were be been being am do does did doing have has had having can could will would shall should
    may might must i me my mine we us our you your yours he she his her they them their it its this that these
    those there here what which who whom whose when where why how much many any some no not yes please ok okay
    just still yet if than too very get got want need like know tell say said thanks thank hi hello hey"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def content_words(text: str) -> list[str]:
    return [word for word in (w.lower() for w in WORD.findall(text)) if word not in STOPWORDS and len(word) > 1]


def entities_find(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if match := EMAIL.search(text):
        found["email"] = match.group(0)
    without_emails = EMAIL.sub(" ", text)
    if match := ORDER_NUMBER.search(without_emails):
        found["order"] = match.group(1) or match.group(2)
    return found


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation, as the assistant remembers it."""

    role: str  # "customer" or "bot"
    text: str
    resolved: str = ""  # a customer turn: its question resolved against the turns before it
    intent: str = ""  # a bot turn: the intent it answered


def is_follow_up(text: str, language: str) -> bool:
    """A message that leans on what came before ("and how much does it cost?", "那运费呢？")."""
    stripped = text.strip()
    if HAN.search(stripped):
        return len(stripped) <= 16 and bool(ZH_FOLLOW_UP.search(stripped))
    words = [w.lower() for w in WORD.findall(stripped)]
    if not words or len(words) > 9:
        return False
    if CONNECTORS.search(stripped):
        return True
    return bool(ANAPHORA & set(words)) and len(content_words(stripped)) <= 2


QUESTION_START = re.compile(
    r"^(how|what|where|when|why|which|who|can|could|is|are|do|does|did|will|would|should|may|"
    r"i (?:want|need|would like|'d like) to|i'd like to|i'm looking for)\b",
    re.I,
)
ZH_QUESTION = re.compile(r"[吗呢么]\s*$|怎么|怎样|如何|为什么|什么|哪|几|多少|多久|多长|何时|能不能|可以.*吗|是否")


def asks_question(text: str) -> bool:
    """The customer asks for something to be explained ("how can I back it up?", "退款多久能到账"),
    not only says how they feel; an upset customer who asks one still gets the answer."""
    stripped = text.strip()
    if "?" in stripped or "？" in stripped:
        return True
    if HAN.search(stripped):
        return bool(ZH_QUESTION.search(stripped))
    return any(QUESTION_START.search(part.strip()) for part in re.split(r"[,.;!]", stripped))


SMALL_TALK_INTENTS = {"greeting", "goodbye", "thanks", "human_request"}


def query_resolve(text: str, language: str, recent: list[Turn]) -> tuple[str, dict[str, str]]:
    """The turn's query with the topic of the conversation's last question when this one is a
    follow-up, and the entities the conversation has mentioned (this message's win)."""
    entities: dict[str, str] = {}
    for turn in recent:
        if turn.role == "customer":
            entities.update(entities_find(turn.text))
    entities.update(entities_find(text))
    if not is_follow_up(text, language):
        return text, entities
    topic = ""
    answered_small_talk = False
    for turn in reversed(recent):
        if turn.role == "bot":
            answered_small_talk = turn.intent in SMALL_TALK_INTENTS
            continue
        if not answered_small_talk:
            topic = turn.resolved or turn.text
        break
    if not topic:
        return text, entities
    return f"{topic} {text}", entities


# --- composing an answer from a passage -------------------------------------------------

MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\((?:https?://|mailto:)[^)]+\)")
MARKDOWN_MARKS = re.compile(r"(\*\*|__|`|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w))")
LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M)
HEADING = re.compile(r"^#+\s*.*$", re.M)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")


def plain(markdown: str) -> str:
    """A passage as plain sentences: headings dropped, links to their text, marks removed."""
    text = HEADING.sub("", markdown)
    text = MARKDOWN_LINK.sub(r"\1", text)
    text = LIST_MARK.sub("", text)
    text = MARKDOWN_MARKS.sub("", text)
    return " ".join(text.split())


def sentences_split(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.strip()) > 1]


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _terms(text: str) -> set[str]:
    terms = {_stem(word) for word in content_words(text)}
    han = "".join(HAN.findall(text))
    terms |= {han[i : i + 2] for i in range(len(han) - 1)}
    return terms


def sentences_answering(query: str, body: str, most: int = 2, focus: str = "") -> list[str]:
    """The passage's sentences that share the most terms with the question, in the passage's
    order; the passage's opening sentences when none shares any. ``focus``: this turn's own
    words, when the query also carries an earlier question's; sentences sharing them come first
    ("and the shipping fee?" after a refund question wants the fee, not the refund)."""
    sentences = sentences_split(plain(body))
    if not sentences:
        return []
    wanted, focused = _terms(query), _terms(focus)
    scored = [
        ((len(focused & terms), len(wanted & terms)), -index)
        for index, terms in enumerate(_terms(sentence) for sentence in sentences)
    ]
    best = sorted(((score, index) for score, index in scored if score[1] > 0), reverse=True)[:most]
    if not best:
        return sentences[:most]
    return [sentences[-index] for _, index in sorted(best, key=lambda pair: -pair[1])]


PROPER_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]{2,}(?:\s[A-Z][a-z]+)*)")


def names_not_covered(question: str, passage: str) -> list[str]:
    """Names in the question (places, products: capitalised words past its start) that the
    passage never mentions, e.g. Australia asked about, Canada, the UK and the EU covered."""
    if HAN.search(question):
        return []
    text = passage.lower()
    return [
        name
        for name in dict.fromkeys(PROPER_NAME.findall(question.strip()))
        if name.lower() not in text and name.lower() not in STOPWORDS
    ]


def answer_compose(question: str, passages: list[dict[str, Any]], language: str, focus: str = "") -> str:
    """A short reply from the best passage: the sentences that answer the question (``focus``:
    this turn's own words), and when the question names what the passage does not cover, a
    line saying so first."""
    best = passages[0]
    lines = best["text"].split("\n", 1)
    body = lines[1] if len(lines) > 1 else lines[0]
    chosen = sentences_answering(question, body, focus=focus) or [best["title"]]
    reply = " ".join(chosen)
    missing = names_not_covered(question, best["text"])
    if missing:
        reply = f"{say('not_covered', language, names=', '.join(missing))} {reply}"
    return reply


# --- what the assistant does per intent ---------------------------------------------------


@dataclass(frozen=True)
class Policy:
    action: str  # "answer", "handoff" or "reply" (agents.models.PolicyAction)
    reply_en: str = ""
    reply_zh: str = ""
    acknowledge: bool = False  # a handoff opens with the acknowledgement

    def reply(self, language: str) -> str:
        return (self.reply_zh if language == "zh" else self.reply_en) or self.reply_en


DEFAULT_POLICIES: dict[str, Policy] = {
    "greeting": Policy("reply", TEXTS["en"]["greeting"], TEXTS["zh"]["greeting"]),
    "goodbye": Policy("reply", TEXTS["en"]["goodbye"], TEXTS["zh"]["goodbye"]),
    "thanks": Policy("reply", TEXTS["en"]["thanks"], TEXTS["zh"]["thanks"]),
    "human_request": Policy("handoff"),
    "complaint": Policy("handoff", acknowledge=True),
    "billing_dispute": Policy("handoff", acknowledge=True),
}
ANSWER = Policy("answer")


def policy_for(intent: str, organization_policies: dict[str, Policy]) -> Policy:
    return organization_policies.get(intent) or DEFAULT_POLICIES.get(intent) or ANSWER
