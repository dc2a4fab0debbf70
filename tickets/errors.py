class DomainError(Exception):
    """A business rule was violated. Views answer it with HTTP 400 and its message."""


class ConversationFull(DomainError):
    """A conversation reached the message cap: the customer starts a new chat."""
