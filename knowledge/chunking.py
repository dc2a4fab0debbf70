"""Markdown-aware chunking: split on headings, then by size; each chunk keeps the article title
and its heading path so that a passage read alone still says what it is about."""

from dataclasses import dataclass

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

CHUNK_CHARS = 800
CHUNK_OVERLAP = 100
_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


@dataclass(frozen=True)
class Passage:
    heading: str
    text: str


def chunk_article(*, title: str, body: str) -> list[Passage]:
    sections = MarkdownHeaderTextSplitter(headers_to_split_on=_HEADERS, strip_headers=True).split_text(body)
    sizer = RecursiveCharacterTextSplitter(chunk_size=CHUNK_CHARS, chunk_overlap=CHUNK_OVERLAP)
    # The title alone is a passage too: customers often ask the very question an article is named after.
    passages = [Passage(heading="", text=title)]
    for section in sections:
        path = [section.metadata[key] for _, key in _HEADERS if section.metadata.get(key)]
        heading = " > ".join(p for p in path if p != title)
        for piece in sizer.split_text(section.page_content):
            prefix = f"{title} — {heading}" if heading else title
            passages.append(Passage(heading=heading[:250], text=f"{prefix}\n{piece.strip()}"))
    if len(passages) == 1 and body.strip():
        passages.append(Passage(heading="", text=f"{title}\n{body.strip()[:CHUNK_CHARS]}"))
    return passages
