"""Read-only model arrays through a memory map of a copy in MODEL_DIR.

A model array loaded the ordinary way sits whole in every process that loads it (the gunicorn
master, then shared with its workers, but counted in full). Mapped from a file, only the pages a
process reads come into memory, the workers share them with the master through the page cache,
and the kernel can drop them again. Worth it for large tables of which a message reads a few
rows: the multilingual encoder's embedding table (knowledge.embeddings) and the language
identifier's tokenizer automaton (agents.language). The copy is written once, atomically (a
process that starts at the same time writes its own and one wins, the same bytes); its name
carries a key of the source (package version, file size and time), so a new package makes a
new copy and the old one is removed."""

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def mapped_copy(array: np.ndarray, *, name: str, key: str) -> np.ndarray:
    """``array`` read through a memory map of its copy ``MODEL_DIR/<name>-<key hash>.npy``;
    ``array`` itself when the copy cannot be written or read (logged)."""
    from django.conf import settings

    directory = Path(settings.MODEL_DIR)
    target = directory / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npy"
    part = None
    try:
        if not target.exists():
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, suffix=".npy.part", delete=False) as part:
                np.save(part, array)
            os.replace(part.name, target)
            part = None
            for stale in directory.glob(f"{name}-*.npy"):  # copies for another package
                if stale != target:
                    stale.unlink(missing_ok=True)
        mapped = np.load(target, mmap_mode="r")
    except (OSError, ValueError) as exc:
        if part is not None:  # a copy cut short (a full disk): not left behind
            Path(part.name).unlink(missing_ok=True)
        logger.warning("%s stays in memory (%s)", name, exc)
        return array
    if mapped.shape != array.shape or mapped.dtype != array.dtype:
        logger.warning("%s stays in memory: its copy %s does not match", name, target.name)
        return array
    return mapped


def source_key(path: Path, package: str, recipe: int = 1) -> str:
    """What a copy of an array loaded from ``path`` (in ``package``) depends on."""
    from importlib.metadata import version

    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{version(package)}:{recipe}"
