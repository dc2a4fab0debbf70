"""Language of a message: "en", "zh" (Simplified or Traditional Chinese) or "other".

The script decides first: Chinese characters with no Japanese kana are Chinese; kana, Hangul,
Cyrillic, Arabic and the other non-Latin scripts are "other". Latin-script text goes to
py3langid (langid.py's model, shipped in the package): it is English unless the model is sure
(CONFIDENT) of another language. Chat messages are short ("ok", "thanks!", "lol") and the
model cannot tell those apart at all, so an unsure call stays English, the product's default.

Measured by ``manage.py evaluate_language`` (bench/README.md has the figures)."""

import re
import threading
from typing import Any

import numpy as np

from config.clients import process_client
from knowledge.mapped import mapped_copy, source_key

ENGLISH, CHINESE, OTHER = "en", "zh", "other"
LANGUAGES = (ENGLISH, CHINESE, OTHER)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
# Letters of the other scripts: Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, Thai, Georgian...
_OTHER_SCRIPT = re.compile(r"[\u0370-\u03ff\u0400-\u052f\u0530-\u058f\u0590-\u05ff\u0600-\u06ff\u0900-\u0dff"
                           r"\u0e00-\u0e7f\u10a0-\u10ff]")  # fmt: skip
_WORD = re.compile(r"[A-Za-z\u00c0-\u024f']+")

# The model weighs English against these Latin-script languages only (langid.py knows 97, many
# of which share words with English and made short English messages look foreign). At or above
# CONFIDENT (normalised probability), with MIN_WORDS words or more, a message is in the other
# language. Chosen on the development set of evaluate_language: 0.5 kept 99.9% of
# English and found 90% of the others; 0.9 found 64%.
LATIN_LANGUAGES = (
    "en", "fr", "de", "es", "it", "pt", "nl", "pl", "tr", "sv", "cs", "vi", "id", "da", "no", "fi", "ro",
    "hu", "ms", "tl", "sk", "hr", "ca",
)  # fmt: skip
CONFIDENT = 0.5
MIN_WORDS = 3

_lock = threading.Lock()


@process_client
def _identifier() -> Any:
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LATIN_LANGUAGES))
    # set_languages keeps the whole model (all 97 languages, 28 MB of float16) in case the set is
    # reset; ours never is, so only the Latin-script languages' 4.6 MB stay in the process.
    identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
    # The tokenizer's automaton (38,346 states x 256 bytes of next states, 39 MB of uint32) is
    # read through a memory map (knowledge.mapped): a message walks a few hundred states, so only
    # their pages come into memory. A memoryview indexes it as fast as the array it replaces.
    moves = np.frombuffer(identifier.tk_nextmove, dtype=np.uint32)
    mapped = mapped_copy(moves, name="langid-nextmove", key=source_key(MODEL_DIR / MODEL_FILE, "py3langid"))
    if mapped is not moves:
        identifier.tk_nextmove = mapped.data
    return identifier


def _latin_language(text: str) -> str:
    if len(_WORD.findall(text)) < MIN_WORDS:
        return ENGLISH
    with _lock:  # the identifier keeps scratch arrays between calls
        language, probability = _identifier().classify(text)
    if language == ENGLISH or probability < CONFIDENT:
        return ENGLISH
    return OTHER


def detect_language(text: str) -> str:
    han = len(_HAN.findall(text))
    kana = len(_KANA_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    other = len(_OTHER_SCRIPT.findall(text))
    if kana and kana * 3 >= latin:
        return OTHER  # Japanese or Korean
    if han and han * 3 >= latin:
        return CHINESE
    if other > latin:
        return OTHER
    return _latin_language(text) if latin else ENGLISH


def warm() -> None:
    detect_language("warm up the language model")
