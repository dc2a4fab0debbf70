class DomainError(Exception):
    """A business rule was violated. Views answer it with HTTP 400 and its message; commands
    print it as their one-line reason. Every app raises it or a subclass of it."""
