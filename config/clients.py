"""Clients of outside services (Chroma, Elasticsearch, the embedding model, the LLM), made once
per process and per argument set, and safe to ask for from many threads at once.

``functools.lru_cache`` calls the factory again when two threads miss together; for Chroma that
race made a cold web worker answer 500 ("Could not connect to tenant default_tenant"). Here the
first caller builds the client under a lock and everyone else waits for that one."""

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_registry: list["ProcessClient[Any]"] = []


class ProcessClient(Generic[T]):
    def __init__(self, factory: Callable[..., T]) -> None:
        self.factory = factory
        self._made: dict[Hashable, T] = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, factory)
        _registry.append(self)

    def __call__(self, *args: Hashable) -> T:
        try:
            return self._made[args]
        except KeyError:
            pass
        with self._lock:
            if args not in self._made:
                self._made[args] = self.factory(*args)
            return self._made[args]

    def forget(self, *args: Hashable) -> None:
        """Drop the client made for these arguments, or with none given every client made so far
        (tests, or after what the client stands for went away)."""
        with self._lock:
            if args:
                self._made.pop(args, None)
            else:
                self._made.clear()

    def made(self) -> int:
        return len(self._made)


def process_client(factory: Callable[..., T]) -> ProcessClient[T]:
    """Decorate a factory whose arguments say which client (address, model name...)."""
    return ProcessClient(factory)


def forget_all() -> None:
    for client in _registry:
        client.forget()
