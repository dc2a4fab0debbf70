"""Progress for long commands (training, evaluation, indexing, key rotation): a bar with the
rate and an estimate of the time left (tqdm) when the command writes to a terminal, nothing
at all when it writes to a log, a pipe or CI.

    with progress_bar(total=len(rows), unit="rows", description="embedding", stream=self.stderr) as bar:
        for batch in batches:
            ...
            bar.update(len(batch))

Code that may run without a bar takes ``progress: Progress | None`` and calls ``advance``."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        return None


def advance(progress: Progress | None, n: int = 1) -> None:
    if progress is not None:
        progress.update(n)


def _is_terminal(stream: Any) -> bool:
    target = getattr(stream, "_out", stream)  # Django's OutputWrapper keeps the real stream here
    try:
        return bool(target.isatty())
    except (AttributeError, ValueError):
        return False


def wants_bar(stream: Any) -> bool:
    """A bar only on a terminal, and never in CI (CI=true) or when CONCIERGE_PROGRESS=0."""
    if os.environ.get("CONCIERGE_PROGRESS", "") == "0" or os.environ.get("CI", "").lower() in ("1", "true"):
        return False
    return _is_terminal(stream)


@contextmanager
def progress_bar(
    *, total: int | None, description: str, unit: str = "it", stream: TextIO | Any = None
) -> Iterator[Progress]:
    stream = stream if stream is not None else sys.stderr
    if not wants_bar(stream):
        yield _Silent()
        return
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=getattr(stream, "_out", stream),
        dynamic_ncols=True,
        smoothing=0.1,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}]",
    )
    try:
        yield bar
    finally:
        bar.close()
