"""``regctl serve-ftp``: serve ``dist/`` read-only over FTP or FTPS (pyftpdlib).

Security model:

- every login (the named user and, with ``anonymous``, anonymous) gets the
  permissions ``elr`` only: change folder, list, download; STOR, DELE, MKD,
  RNFR, SITE CHMOD ... are answered ``550 Not enough privileges``;
- the served root is the real path of ``dist/``; any path that resolves
  outside it (``..``, absolute paths, a symlink pointing out) is refused, and
  hidden entries (temp files of a writer, ``.``-names) are neither listed nor
  served;
- the password is compared in constant time, is never logged (pyftpdlib logs
  ``PASS ******``) and never reaches the command line;
- the log (stderr or ``log_file``) has a line for each connection, login,
  failed login, download (``RETR ... completed=1 bytes=N``), refused command
  and disconnection;
- a failed login is answered only after ``login_delay_s``; a client is
  dropped after 3 failures; ``max_cons_per_ip`` caps connections per address;
- with a certificate, TLS is required on the control and the data channel.

pyftpdlib and pyOpenSSL are imported only here, when the server starts.
The server is single-process and asynchronous; downloads use ``sendfile(2)``
(plain FTP), so one core serves many clients at disk/network speed.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable
from typing import Any

from registry_cli.core.served.bundle_files import DistBundles
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.ftp.settings import ServerSettings
from registry_cli.storage.bundle_stream import BundleFile, BundleStream

log = logging.getLogger("regctl.ftp")

READ_ONLY_PERMS = "elr"


def _configure_logging(settings: ServerSettings) -> logging.Handler:
    handler: logging.Handler
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    for name in ("regctl.ftp", "pyftpdlib"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(logging.INFO)
        lg.propagate = False
    return handler


def check_settings(settings: ServerSettings) -> None:
    """Refuse unsafe or incomplete settings before binding a port (exit 2)."""
    if not settings.anonymous and not (settings.user and settings.password):
        raise BadInput(
            "serve-ftp needs --user with a password source, or --anonymous",
            hint="e.g. --user mlops --password-env REGCTL_FTP_PASSWORD "
            "(or --password-file F); --anonymous serves read-only without login",
        )
    if settings.user and not settings.password:
        raise BadInput(
            f"no password for user {settings.user!r}",
            hint="give --password-env VAR or --password-file F",
        )
    if settings.password and not settings.user:
        raise BadInput("a password source was given without --user")
    if settings.user == "anonymous":
        raise BadInput("the user name 'anonymous' is reserved; use --anonymous")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise BadInput("--tls-cert and --tls-key go together")
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            raise BadInput(f"TLS file {path} does not exist")
    if settings.dist.exists() and not settings.dist.is_dir():
        raise BadInput(f"{settings.dist} is not a folder")
    try:
        import pyftpdlib  # noqa: F401

        if settings.tls_cert:
            import OpenSSL  # noqa: F401
    except ImportError as exc:
        raise BadInput(
            f"serve-ftp needs {exc.name}", hint='install the extra: pip install "regctl[ftp]"'
        ) from None


class _FtpBundleFile(BundleFile):
    """What pyftpdlib's producer reads: views of the assembled chunks (no copy; the
    data channel sends and slices them as they are)."""

    def read(self, n: int = -1) -> Any:
        return self.read_view(n) if n and n > 0 else super().read(n)


def _virtual_stat(stream: BundleStream) -> os.stat_result:
    mtime = stream.layout.mtime
    return os.stat_result((stat.S_IFREG | 0o444, 0, 0, 1, 0, 0, stream.size, mtime, mtime, mtime))


def _refusing_damaged(dtp: Any) -> type:
    """The data channel, logging a damaged bundle source in one line (no traceback)
    and answering ``426`` (see registry_cli.storage.bundle_stream)."""

    def handle_error(self: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, IntegrityError):
            dtp.handle_error(self)
            return
        log.error("transfer aborted: %s", exc)
        self._resp = ("426 The file is damaged on the server; transfer aborted.", log.warning)
        self.close()

    return type("RegctlDTPHandler", (dtp,), {"handle_error": handle_error})


def build_server(settings: ServerSettings) -> Any:
    """Create (and bind) the pyftpdlib server for ``settings``; call ``serve_forever``.

    ``dist/`` is created when missing (a registry with nothing published yet).
    """
    check_settings(settings)
    settings.dist.mkdir(parents=True, exist_ok=True)
    from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    root = os.path.realpath(settings.dist)
    bundles = DistBundles(settings.dist)
    expected_user = settings.user
    expected_password = settings.password

    class ReadOnlyAuthorizer(DummyAuthorizer):  # type: ignore[misc]
        """One named user and/or anonymous, both read-only; constant-time password check."""

        def validate_authentication(self, username: str, password: str, handler: Any) -> None:
            if username == "anonymous" and self.has_user("anonymous"):
                return
            ok_user = expected_user is not None and hmac.compare_digest(
                username.encode(), expected_user.encode()
            )
            ok_pass = expected_password is not None and hmac.compare_digest(
                password.encode(), expected_password.encode()
            )
            if not (ok_user and ok_pass):
                raise AuthenticationFailed("Authentication failed.")

    authorizer = ReadOnlyAuthorizer()
    if settings.user:
        # the stored password is a placeholder: validate_authentication checks the real one
        authorizer.add_user(
            settings.user, "", root, perm=READ_ONLY_PERMS, msg_login="Login successful (read-only)."
        )
    if settings.anonymous:
        authorizer.add_anonymous(
            root, perm=READ_ONLY_PERMS, msg_login="Anonymous login (read-only)."
        )

    class DistFS(AbstractedFS):  # type: ignore[misc]
        """A filesystem view that never leaves ``dist/`` and hides dot-entries."""

        def validpath(self, path: str) -> bool:
            if not super().validpath(path):
                return False
            rel = os.path.relpath(os.path.realpath(path), root)
            return rel == "." or not any(p.startswith(".") for p in rel.split(os.sep))

        def _visible(self, directory: str, names: list[str]) -> list[str]:
            return [
                n
                for n in names
                if not n.startswith(".") and self.validpath(os.path.join(directory, n))
            ]

        def listdir(self, path: str) -> list[str]:
            names = self._visible(path, super().listdir(path))
            return names + [n for n in bundles.names(path) if n not in names]

        def listdirinfo(self, path: str) -> list[str]:
            return self.listdir(path)

        # a version whose bundle is assembled from its payload shows a virtual
        # bundle.tar.gz (docs/server.md): listed with its size, RETR and REST work
        def _bundle(self, path: str) -> BundleStream | None:
            return bundles.stream(path) if path.endswith("/bundle.tar.gz") else None

        def stat(self, path: str) -> Any:
            found = self._bundle(path)
            return super().stat(path) if found is None else _virtual_stat(found)

        def lstat(self, path: str) -> Any:
            found = self._bundle(path)
            return super().lstat(path) if found is None else _virtual_stat(found)

        def isfile(self, path: str) -> bool:
            return self._bundle(path) is not None or super().isfile(path)

        def lexists(self, path: str) -> bool:
            return self._bundle(path) is not None or super().lexists(path)

        def getsize(self, path: str) -> int:
            found = self._bundle(path)
            return super().getsize(path) if found is None else found.size

        def getmtime(self, path: str) -> float:
            found = self._bundle(path)
            return super().getmtime(path) if found is None else float(found.layout.mtime)

        def open(self, filename: str, mode: str) -> Any:
            if "r" not in mode or any(c in mode for c in "wa+x"):
                raise PermissionError("read-only server")
            if not self.validpath(filename):
                raise PermissionError("outside the served tree")
            found = self._bundle(filename)
            if found is not None:
                return _FtpBundleFile(found, filename)  # its path, as logged for a file
            return super().open(filename, mode)

    base: Any = FTPHandler
    attrs: dict[str, Any] = {}
    if settings.tls_cert is not None:
        from pyftpdlib.handlers import TLS_FTPHandler

        base = TLS_FTPHandler
        attrs.update(
            certfile=str(settings.tls_cert),
            keyfile=str(settings.tls_key),
            tls_control_required=True,
            tls_data_required=True,
            ssl_context=None,
        )

    attrs.update(
        dtp_handler=_refusing_damaged(base.dtp_handler),
        authorizer=authorizer,
        abstracted_fs=DistFS,
        banner="regctl model registry (read-only).",
        passive_ports=(
            list(range(settings.passive_ports[0], settings.passive_ports[1] + 1))
            if settings.passive_ports
            else None
        ),
        masquerade_address=settings.masquerade_address,
        auth_failed_timeout=settings.login_delay_s,
        max_login_attempts=3,
        timeout=settings.idle_timeout_s,
        permit_foreign_addresses=False,
        permit_privileged_ports=False,
    )
    handler = type("RegctlFTPHandler", (base,), attrs)
    server_cls = type(
        "RegctlFTPServer",
        (FTPServer,),
        {
            "max_cons": settings.max_cons,
            "max_cons_per_ip": settings.max_cons_per_ip,
        },
    )
    try:
        return server_cls((settings.host, settings.port), handler)
    except OSError as exc:
        raise BadInput(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
            hint="pick another --port, or stop what is using it",
        ) from None


def serve(settings: ServerSettings, *, on_ready: Callable[[str, int], None] | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C, then close every connection and return."""
    check_settings(settings)  # before the log handler opens (and creates) a log file
    handler = _configure_logging(settings)
    server = build_server(settings)
    host, port = server.address[:2]
    who = []
    if settings.user:
        who.append(f"user {settings.user!r}")
    if settings.anonymous:
        who.append("anonymous")
    log.info(
        "serving %s read-only (%s)%s",
        os.path.realpath(settings.dist),
        ", ".join(who),
        ", TLS required" if settings.tls_cert else "",
    )
    if settings.passive_ports:
        log.info("passive ports %d-%d", *settings.passive_ports)
    log.info("listening on %s:%d", host, port)
    handler.flush()
    if on_ready is not None:
        on_ready(host, port)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        # handle_exit=False: we log and close ourselves (pyftpdlib would log at INFO twice)
        server.serve_forever(timeout=1.0, blocking=True, handle_exit=False)
    except KeyboardInterrupt as exc:
        log.info("stopping (%s)", exc.args[0] if exc.args else "SIGINT")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close_all()
        log.info("stopped")
        handler.flush()
