"""Labelled text files: CSV with a text column and a label column, as the shared datasets and
intent example imports are written."""

import csv
from pathlib import Path

from config.errors import DomainError


def labelled_rows(path: Path, label_columns: tuple[str, ...] = ("label",)) -> list[tuple[str, str]]:
    """(text, label) pairs; the label comes from the first of ``label_columns`` present."""
    if not path.is_file():
        raise DomainError(f"{path}: no such file.")
    try:
        with path.open(encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            label = next((name for name in label_columns if name in columns), None)
            if "text" not in columns or label is None:
                raise DomainError(f"{path}: needs the columns text and {' or '.join(label_columns)}.")
            return [(row["text"], row[label]) for row in reader]
    except (OSError, UnicodeDecodeError) as exc:
        raise DomainError(f"{path}: cannot read ({exc})") from exc
