"""The error codes of the registry server's error documents (see docs/server.md), in one table
that both sides read: the server (``registry_cli/server/errors.py``) turns a core
error into a status and code, the remote client (``registry_cli/remote/documents.py``)
turns the code back into the core error. Pure: imports only the errors.
"""

from __future__ import annotations

from registry_cli.errors import (
    BadInput,
    IntegrityError,
    MachineFault,
    NotFound,
    RegctlError,
    RemoteError,
    RuleViolation,
)

# (core error, HTTP status, code), checked in this order: a subclass stands before its
# base (a MachineFault is a BadInput). Any other RegctlError is 500 ``internal``.
ERROR_STATUS: tuple[tuple[type[RegctlError], int, str], ...] = (
    (MachineFault, 507, "fault"),  # the machine said no; the server keeps running
    (NotFound, 404, "not_found"),
    (BadInput, 400, "bad_input"),
    (RuleViolation, 409, "refused"),
    (IntegrityError, 422, "integrity"),
    (RemoteError, 502, "remote"),
)

# status -> code, with the refusals the HTTP layer decides itself (auth, methods, size)
CODES: dict[int, str] = {
    **{status: code for _cls, status, code in ERROR_STATUS},
    401: "unauthorized",
    403: "forbidden",
    405: "bad_input",
    413: "too_large",
    416: "bad_input",
    500: "internal",
}

# code -> the core error the client raises again. ``remote`` and ``internal`` (the
# server or what it reached failed) stay out: the client tells them as a RemoteError
# naming the server.
ERRORS: dict[str, type[RegctlError]] = {
    **{code: cls for cls, _status, code in ERROR_STATUS if cls is not RemoteError},
    "too_large": BadInput,
}


def status_of(exc: RegctlError) -> int:
    """The HTTP status a core error is answered with."""
    for cls, status, _code in ERROR_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


class ApiError(Exception):
    """A refusal decided by the HTTP layer itself (auth, size, paths), with its status;
    both HTTP faces (the API and the web UI) render it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers = headers or {}
