class DomainError(Exception):
    """A business rule was violated. Views answer it with its HTTP status (400 unless a subclass
    says otherwise) and its message; commands print it as their one-line reason. Every app
    raises it or a subclass of it."""

    status_code = 400
    code = "invalid"


class NotAllowed(DomainError):
    """The caller may not do this (a website not allowed to embed the widget, a forged identity)."""

    status_code = 403
    code = "forbidden"

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code
