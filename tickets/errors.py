class DomainError(Exception):
    """A business rule was violated. Views answer it with HTTP 400 and its message."""
