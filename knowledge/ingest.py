"""Reading knowledge-base files: markdown (optional front matter), HTML, plain text, and JSONL
with one {"id", "title", "body"} object per line."""

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from config.errors import DomainError

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".jsonl"}


@dataclass
class Document:
    title: str
    body: str
    slug: str
    meta: dict[str, str] = field(default_factory=dict)


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    meta: dict[str, str] = {}
    if text.startswith("---\n"):
        header, _, text = text[4:].partition("\n---\n")
        for line in header.splitlines():
            key, _, value = line.partition(":")
            if key.strip():
                meta[key.strip()] = value.strip()
    return meta, text.strip()


class _TextFromHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.parts: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in ("p", "br", "li", "div", "h1", "h2", "h3", "h4", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def _first_heading(body: str, fallback: str) -> str:
    match = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
    return match.group(1).strip() if match else fallback


def read_documents(path: Path) -> list[Document]:
    """Documents in one file; raises DomainError with the file's name when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DomainError(f"{path}: unsupported file type {suffix or '(none)'}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DomainError(f"{path}: cannot read ({exc})") from exc
    if suffix == ".jsonl":
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                documents.append(Document(title=str(row["title"]), body=str(row["body"]), slug=str(row["id"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise DomainError(f"{path}:{number}: not a JSON object with id, title and body ({exc})") from exc
        return documents
    if suffix in (".html", ".htm"):
        parser = _TextFromHtml()
        parser.feed(text)
        body = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
        return [Document(title=parser.title.strip() or path.stem, body=body, slug=path.stem)]
    meta, body = parse_front_matter(text) if suffix in (".md", ".markdown") else ({}, text.strip())
    return [Document(title=meta.get("title") or _first_heading(body, path.stem), body=body, slug=path.stem, meta=meta)]


def documents_read(path: Path) -> list[Document]:
    """The documents in a file, or in every readable file under a folder (by name)."""
    if path.is_dir():
        return [
            document
            for each in sorted(path.rglob("*"))
            if each.suffix.lower() in SUFFIXES
            for document in read_documents(each)
        ]
    return read_documents(path)
