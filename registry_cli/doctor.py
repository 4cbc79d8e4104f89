"""``regctl doctor``: is this machine fit to hold a registry? (see docs/operations.md)

Each check returns one :class:`Check` (``ok``/``warn``/``fail``, a detail and,
when not ok, the fix). What regctl relies on is tried for real where the root
lives: a write, an atomic rename over an existing file, a hard link, and an
exclusive ``flock`` that a second process must find taken. Optional parts are
looked up with :func:`importlib.util.find_spec`, never imported.

Sits above the core (it opens a :class:`ModelRegistry` and uses its public
API only); the command in ``cli/ops_cmds.py`` prints what this returns.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.errors import RegctlError
from registry_cli.storage import faults, fs_blobs

if TYPE_CHECKING:
    from registry_cli.core.config import Config
    from registry_cli.core.contract import Registry
    from registry_cli.core.registry import ModelRegistry

OK, WARN, FAIL = "ok", "warn", "fail"
LOW_SPACE = 1_000_000_000  # warn below 1 GB free
NO_SPACE = 10_000_000  # fail below 10 MB free
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "fuse.sshfs")
EXTRAS = (  # (module, what needs it, extra to install)
    ("torch", "--convert, predict, serve of torch models", "torch"),
    ("mlflow", "publish --from-mlflow, predict of MLflow models", "mlflow"),
    ("pyftpdlib", "serve-ftp", "ftp"),
    ("fastapi", "serve", "serve"),
    ("uvicorn", "serve", "serve"),
    ("boto3", "s3:// roots and sources, not available yet", "s3"),
)
# Holds the lock file given as argv[1]? Exit 0 when it is taken (locks work), 3 when not.
_FLOCK_PROBE = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "try:\n"
    "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "except BlockingIOError:\n"
    "    sys.exit(0)\n"
    "sys.exit(3)\n"
)


@dataclass
class Check:
    check: str
    status: str
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str]:
        detail = f"{self.detail}; fix: {self.fix}" if self.fix else self.detail
        return {"check": self.check, "status": self.status, "detail": detail}


@dataclass
class Context:
    """What the checks share: the root and config as the commands would find them."""

    root: Path | None  # None for an object-store root
    config: Config | None
    registry: ModelRegistry | None
    object_root: str | None = None  # s3://BUCKET/PREFIX
    remote: str | None = None  # a registry server's URL


def run(
    root: str | None, config: str | None, open_registry: Callable[..., Registry]
) -> list[Check]:
    """Every check, in order. ``open_registry(root, config)`` opens the registry the
    way the commands do (the CLI's, so doctor finds what they find)."""
    checks: list[Check] = []
    ctx = _open(root, config, open_registry, checks)
    checks.extend(check_root(ctx))
    checks.extend(check_served_tree(ctx))
    checks.append(check_cache(ctx))
    checks.extend(check_extras())
    checks.append(check_mlflow(ctx))
    if ctx.remote is None:
        checks.append(Check("remote registry", OK, "not configured (nothing to check)"))
    else:
        checks.append(Check("remote registry", WARN, f"{ctx.remote}: token not checked yet"))
    if ctx.object_root is None:
        checks.append(Check("s3 root", OK, "not configured (nothing to check)"))
    else:
        checks.append(
            Check("s3 root", WARN, f"{ctx.object_root}: conditional writes not checked yet")
        )
    return checks


def _open(
    root: str | None, config: str | None, opener: Callable[..., Any], checks: list[Check]
) -> Context:
    from registry_cli.core.registry import ModelRegistry

    try:
        reg = opener(root, config)
    except RegctlError as exc:
        fallback = root or os.environ.get("REGCTL_ROOT") or "registry"
        checks.append(Check("config", FAIL, exc.message, exc.hint or "fix the config file"))
        return Context(Path(fallback).absolute(), None, None)
    if not isinstance(reg, ModelRegistry):  # a registry server (remote: in the config)
        checks.append(Check("config", OK, "valid, every key known; a registry server"))
        return Context(None, None, None, remote=str(reg.root))
    cfg = reg.config
    where = str(cfg.path) if cfg.path else "no registry.yaml (defaults)"
    checks.append(Check("config", OK, f"{where}: valid, every key known"))
    if not isinstance(reg.root, Path):  # an object-store root (s3://...)
        checks.append(
            Check("root", WARN, f"{reg.root}: an object-store root; doctor checks folders only")
        )
        return Context(None, cfg, None, str(reg.root))
    return Context(reg.root, cfg, reg)


# ---------------------------------------------------------------- the root
def check_root(ctx: Context) -> list[Check]:
    root = ctx.root
    if root is None:
        return []
    if not root.is_dir():
        parent = root.parent
        while not parent.exists() and parent.parent != parent:
            parent = parent.parent
        if os.access(parent, os.W_OK):
            return [Check("root", WARN, f"{root} does not exist yet", f"regctl --root {root} init")]
        return [
            Check(
                "root",
                FAIL,
                f"{root} does not exist and {parent} is not writable",
                f"create {root} as a user who may, or choose another --root",
            )
        ]
    out = [Check("root", OK, f"{root} exists")]
    out.append(_free_space("root free space", root))
    out.append(_filesystem(root))
    checked, copied = fs_blobs.copied_payloads(root)
    if copied:
        detail = f"{copied} of {checked} payload files checked are copies, not hard links of blobs"
        out.append(Check("blob links", WARN, detail, "the filesystem gives copies: more space"))
    if ctx.registry is None:
        return out
    try:
        with ctx.registry.scratch("doctor") as scratch:
            out.append(Check("root writable", OK, f"created a file under {root}"))
            out.extend(_try_operations(Path(scratch)))
    except (OSError, RegctlError) as exc:
        fault = (
            faults.translate(exc, "write to the root", root) if isinstance(exc, OSError) else None
        )
        err = fault or exc
        message = err.message if isinstance(err, RegctlError) else str(err)
        hint = err.hint if isinstance(err, RegctlError) else None
        out.append(Check("root writable", FAIL, message, hint or f"make {root} writable"))
    return out


def _free_space(name: str, path: Path) -> Check:
    try:
        st = os.statvfs(path)
        free = faults.free_bytes(path)
    except OSError as exc:
        return Check(name, WARN, f"cannot ask the filesystem of {path}: {exc.strerror}")
    total = st.f_blocks * st.f_frsize
    detail = f"{faults.human_size(free)} free of {faults.human_size(total)} in {path}"
    if free < NO_SPACE:
        return Check(name, FAIL, detail, f"free up space on the filesystem of {path}")
    if free < LOW_SPACE:
        return Check(name, WARN, detail, f"free up space on the filesystem of {path}")
    return Check(name, OK, detail)


def filesystem_type(path: Path) -> tuple[str, str]:
    """(type, mount point) of the filesystem holding ``path``, from /proc/self/mountinfo."""
    real = os.path.realpath(path)
    best = ("unknown", "/")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return best
    best_len = -1
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].encode().decode("unicode_escape")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= best_len:
            best, best_len = (right.split()[0], mount), len(mount)
    return best


def _filesystem(root: Path) -> Check:
    kind, mount = filesystem_type(root)
    detail = f"{kind} (mounted at {mount})"
    if kind in NETWORK_FS or kind.startswith("fuse"):
        return Check(
            "root filesystem",
            WARN,
            f"{detail}: a network or FUSE filesystem; rename and locks may not be atomic",
            "prefer a local filesystem for the root (see the checks below)",
        )
    return Check("root filesystem", OK, detail)


def _try_operations(scratch: Path) -> list[Check]:
    """Rename over an existing file, a hard link, and flock seen by a second process."""
    a, b = scratch / "a", scratch / "b"
    posix = "put the root on a POSIX filesystem"
    copies = "put the root on a filesystem with hard links: each payload file is a copy here"
    try:
        a.write_bytes(b"new")
        b.write_bytes(b"old")
        os.rename(a, b)
        problem = None if b.read_bytes() == b"new" and not a.exists() else "did not replace"
    except OSError as exc:
        problem = f"failed: {exc.strerror}"
    out = [
        Check("atomic rename", FAIL, f"rename over an existing file {problem}", posix)
        if problem
        else Check("atomic rename", OK, "rename over an existing file works")
    ]
    try:
        os.link(b, scratch / "c")
        problem = None if os.stat(b).st_nlink == 2 else "a hard link did not share the file"
    except OSError as exc:
        problem = f"hard links fail ({exc.strerror})"
    out.append(
        Check("hard links", WARN, problem, copies)
        if problem
        else Check("hard links", OK, "hard links work (versions and dist/ share the blobs)")
    )
    out.append(_flock(scratch / "probe.lock"))
    return out


def _flock(path: Path) -> Check:
    fix = "put the root on a local filesystem: concurrent writers are not serialised here"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return Check("flock", WARN, "no fcntl on this platform; filelock is used instead")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            return Check("flock", FAIL, f"flock fails on the root: {exc.strerror}", fix)
        try:
            probe = subprocess.run(
                [sys.executable, "-c", _FLOCK_PROBE, str(path)], timeout=30, capture_output=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return Check("flock", WARN, f"could not start a second process: {exc}")
        if probe.returncode == 0:
            return Check("flock", OK, "a second process finds the lock taken")
        if probe.returncode == 3:
            return Check("flock", FAIL, "a second process took a lock this one holds", fix)
        err = probe.stderr.decode(errors="replace").strip().splitlines()
        return Check("flock", WARN, f"the second process failed: {err[-1] if err else '?'}")
    finally:
        os.close(fd)


# ---------------------------------------------------------------- dist/, cache, extras, MLflow
def check_served_tree(ctx: Context) -> list[Check]:
    """Re-hash the versions and compare dist/ with models/ (as ``regctl verify``)."""
    reg = ctx.registry
    if reg is None or ctx.root is None or not (ctx.root / "models").is_dir():
        return [Check("served tree", OK, "no models yet (nothing to check)")]
    try:
        report = reg.verify()
    except (OSError, RegctlError) as exc:
        text = exc.message if isinstance(exc, RegctlError) else str(exc)
        return [Check("served tree", WARN, f"could not verify: {text}", "regctl verify")]
    dist = str(ctx.root / "dist")
    drift = [p for p in report.problems if str(p.path).startswith(dist)]
    other = [p for p in report.problems if p not in drift]
    out = []
    if drift:
        first = drift[0]
        out.append(
            Check(
                "served tree",
                FAIL,
                f"{len(drift)} problem(s) in dist/, e.g. {first.path}: {first.problem}",
                "regctl dist rebuild",
            )
        )
    else:
        out.append(Check("served tree", OK, f"dist/ matches models/ ({report.checked} checked)"))
    if other:
        first = other[0]
        out.append(
            Check(
                "versions",
                FAIL,
                f"{len(other)} problem(s), e.g. {first.path}: {first.problem}",
                "regctl verify --json lists them; restore the files from a backup",
            )
        )
    else:
        out.append(Check("versions", OK, "every payload file and bundle matches its checksum"))
    return out


def check_cache(ctx: Context) -> Check:
    try:
        from registry_cli.pull.cache import resolve_cache_root

        cache = resolve_cache_root(None, ctx.config.section("pull") if ctx.config else None)
    except Exception as exc:
        return Check("cache", WARN, f"cannot tell where the pull cache is: {exc}")
    existing = cache
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Check(
            "cache",
            FAIL,
            f"{cache}: {existing} is not writable",
            "set --cache-dir / $REGCTL_CACHE_DIR / pull.cache_dir to a writable folder",
        )
    space = _free_space("cache", existing)
    state = "exists" if cache.exists() else "will be created"
    return Check("cache", space.status, f"{cache} {state}, writable; {space.detail}", space.fix)


def check_extras() -> list[Check]:
    out = []
    for module, needed_by, extra in EXTRAS:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            out.append(Check(f"extra {module}", OK, f"installed ({needed_by})"))
        elif extra == "s3":
            out.append(Check(f"extra {module}", OK, f"not installed (only for {needed_by})"))
        else:
            fix = f'pip install "regctl[{extra}]"'
            out.append(Check(f"extra {module}", WARN, f"not installed: needed by {needed_by}", fix))
    return out


def check_mlflow(ctx: Context, timeout: float = 3.0) -> Check:
    section = ctx.config.section("mlflow") if ctx.config else {}
    uri = os.environ.get("MLFLOW_TRACKING_URI") or section.get("tracking_uri")
    if not uri:
        return Check("mlflow server", OK, "not configured (nothing to check)")
    parts = urllib.parse.urlsplit(str(uri))
    shown = parts._replace(netloc=parts.hostname or "").geturl() if parts.password else uri
    if parts.scheme not in ("http", "https"):
        return Check("mlflow server", OK, f"{shown}: not a server (nothing to reach)")
    try:
        with urllib.request.urlopen(str(uri).rstrip("/") + "/health", timeout=timeout) as resp:
            status = resp.status
    except Exception as exc:
        reason = getattr(exc, "reason", None) or exc
        return Check(
            "mlflow server",
            FAIL,
            f"{shown} unreachable: {reason}",
            "start the tracking server, or fix mlflow.tracking_uri / $MLFLOW_TRACKING_URI",
        )
    return Check("mlflow server", OK, f"{shown} answers (HTTP {status})")


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0
