from config.errors import DomainError


class ConversationFull(DomainError):
    """A conversation reached the message cap: the customer starts a new chat."""


class RateLimited(DomainError):
    """Too many messages too fast from one conversation, address or organization."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


__all__ = ["ConversationFull", "DomainError", "RateLimited"]
