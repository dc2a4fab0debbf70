"""The support check on what an LLM wrote: before a generated answer (or a suggested reply for
an agent) is used, every sentence of it that states something must be supported by the
evidence it was given, the retrieved passages or an action's result. Offline, by meaning: each
claim against each evidence sentence with the embedding models the knowledge base uses (MiniLM
for English, USE multilingual for anything else), plus every number the claim states appearing
in the evidence (a changed price or a changed number of days reads "similar" to a model). One
unsupported claim, or none at all ("The answer to this question is:" says nothing), and the
whole answer is set aside: the caller sends the composed answer."""

import re
from dataclasses import dataclass, field

from django.conf import settings

from agents.dialog import HAN, content_words, plain, sentences_split

NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# A sentence with fewer words than this states nothing to check ("Happy to help!", "Thanks.").
MIN_CLAIM_WORDS = 3
MIN_CLAIM_HAN = 6


@dataclass(frozen=True)
class SupportVerdict:
    supported: bool
    unsupported: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # each claim's best similarity, in order


def _is_claim(sentence: str) -> bool:
    if HAN.search(sentence):
        return len(HAN.findall(sentence)) >= MIN_CLAIM_HAN
    return len(content_words(sentence)) >= MIN_CLAIM_WORDS


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def support_check(answer: str, evidence: list[str], threshold: float | None = None) -> SupportVerdict:
    """Whether every claim of ``answer`` is supported by a sentence of ``evidence``."""
    from knowledge.embeddings import embed, embed_multilingual

    threshold = settings.CONCIERGE_LLM_SUPPORT_MIN if threshold is None else threshold
    claims = [s for s in sentences_split(plain(answer)) if _is_claim(s)]
    if not claims:  # greetings and filler only: nothing that answers
        return SupportVerdict(supported=False, unsupported=[answer.strip()])
    sources = [s for text in evidence for s in sentences_split(plain(text))]
    if not sources:
        return SupportVerdict(supported=False, unsupported=claims, scores=[0.0] * len(claims))
    known_numbers = set().union(*(_numbers(text) for text in evidence))
    chinese = any(HAN.search(text) for text in [answer, *evidence])
    vectors = (embed_multilingual if chinese else embed)(claims + sources)
    similarity = vectors[: len(claims)] @ vectors[len(claims) :].T
    best = [float(row.max()) for row in similarity]
    unsupported = [
        claim
        for claim, score in zip(claims, best, strict=True)
        if score < threshold or not _numbers(claim) <= known_numbers
    ]
    return SupportVerdict(supported=not unsupported, unsupported=unsupported, scores=[round(b, 3) for b in best])
