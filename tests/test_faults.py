"""Faults of the machine, produced for real (see docs/operations.md): a small tmpfs for no space, a
read-only remount, a non-root user for permission denied.

Each case proves the exit code (2), the one-line message naming the operation and
the user's path (never an internal ``.regctl/tmp`` path), that nothing is left behind
(``regctl gc`` finds nothing), that the audit is untouched, and that a retry after
fixing the fault works. Mounting needs root (CI runs as root, and so does the dev
container); elsewhere these tests are skipped with that reason.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_cli.errors import MachineFault
from registry_cli.storage import faults
from tests.conftest import regctl_cmd

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs and switching users need root (CI runs as root)"
)
MB = 1_000_000


def run(
    *args: str, root: Path | None = None, user: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    cmd = regctl_cmd(*(["--root", str(root)] if root else []), *args)
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd="/" if user else None,  # a folder the other user may enter
    )


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """A 20 MB tmpfs in a world-readable folder (so another user can reach it)."""
    point = Path(tempfile.mkdtemp(prefix="regctl-fault-"))
    point.chmod(0o755)
    mount("-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(point))
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def blob(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for _ in range(size // MB):
            fh.write(os.urandom(MB))
    return path


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    assert ".regctl" not in proc.stderr, proc.stderr  # never an internal path
    return lines[0]


def assert_clean(root: Path, audit_before: str) -> None:
    gc = run("gc", "--json", root=root)
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["removed"] == []
    assert (root / "audit.jsonl").read_text() == audit_before
    tmp = root / ".regctl" / "tmp"
    assert not tmp.exists() or not any(p for p in tmp.iterdir() if not p.name.endswith(".lock"))


# ---------------------------------------------------------------- no space
@needs_root
def test_no_space_publish_is_exit_2_names_the_root_and_retry_works(tmpfs, tmp_path):
    root = tmpfs / "reg"
    small = blob(tmp_path / "src" / "small.pt", 1 * MB)
    big = blob(tmp_path / "src" / "big.pt", 30 * MB)
    assert run("publish", "m", str(small), root=root).returncode == 0
    audit = (root / "audit.jsonl").read_text()
    proc = run("publish", "m", str(big), root=root)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert f"not enough space in {root} to publish" in line, line
    assert "hint:" in proc.stderr
    assert_clean(root, audit)
    assert [v["version"] for v in json.loads(run("versions", "m", "--json", root=root).stdout)[
        "versions"
    ]] == ["v1"]  # fmt: skip
    mount("-o", "remount,size=100m", str(tmpfs))  # the fix: a bigger filesystem
    retry = run("publish", "m", str(big), "--json", root=root)
    assert retry.returncode == 0, retry.stderr
    assert run("verify", root=root).returncode == 0


@needs_root
def test_check_free_space_on_a_real_filesystem(tmpfs):
    free = faults.free_bytes(tmpfs)
    assert 15 * MB < free <= 21 * MB
    faults.check_free_space(tmpfs / "not" / "yet", MB, "publish", "small.pt")  # fits: no error
    with pytest.raises(MachineFault) as info:
        faults.check_free_space(tmpfs, 60 * MB, "publish", "big.pt", what="payload + bundle")
    assert info.value.exit_code == 2 and info.value.errno == errno.ENOSPC
    assert re.fullmatch(
        rf"not enough space in {re.escape(str(tmpfs))} to publish big\.pt: "
        r"needs ~60 MB \(payload \+ bundle\), \d+(\.\d)? MB free",
        info.value.message,
    ), info.value.message


@needs_root
def test_no_space_in_the_cache_names_the_cache_and_leaves_it_clean(tmpfs, tmp_path, reg):
    reg.publish("m", [blob(tmp_path / "src" / "w.pt", 8 * MB)])
    reg.promote("m")
    cache = tmpfs / "cache"
    blob(tmpfs / "filler", 14 * MB)  # 20 MB filesystem: the 8 MB model no longer fits
    args = ("pull", "m", "--from", str(reg.root), "--cache-dir", str(cache), "--json")
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert f"not enough space in {cache} to pull m" in line, line
    # partial data only where a pull keeps it to resume (docs/pull.md): hidden or *.incomplete
    assert [p for p in files_in(cache) if not partial(p.relative_to(cache))] == []
    (tmpfs / "filler").unlink()  # the fix: free space
    retry = run(*args)
    assert retry.returncode == 0, retry.stderr
    assert json.loads(retry.stdout)["version"] == "v1"
    assert [p for p in files_in(cache) if p.name.endswith(".incomplete")] == []


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and "/.locks/" not in str(p)]


def partial(rel: Path) -> bool:
    return any(part.startswith(".") or part.endswith(".incomplete") for part in rel.parts)


# ---------------------------------------------------------------- read-only
@needs_root
def test_read_only_root_is_exit_2_for_every_writer_and_retry_works(tmpfs, tmp_path):
    root = tmpfs / "reg"
    src = blob(tmp_path / "src" / "m.pt", 1 * MB)
    assert run("publish", "m", str(src), root=root).returncode == 0
    audit = (root / "audit.jsonl").read_text()
    mount("-o", "remount,ro", str(tmpfs))
    for args, doing in (
        (("publish", "m", str(src)), "publish m"),
        (("promote", "m"), "promote m"),
        (("dist", "rebuild"), "dist rebuild"),
    ):
        proc = run(*args, root=root)
        assert proc.returncode == 2, (args, proc.stderr)
        line = error_line(proc)
        assert line == f"error: cannot {doing}: {root} is on a read-only filesystem " + (
            "(needs write access)"
        ), line
    reads = run("show", "m@candidate", "--json", root=root)  # reading still works
    assert reads.returncode == 0 and json.loads(reads.stdout)["version"] == "v1"
    mount("-o", "remount,rw", str(tmpfs))  # the fix
    assert_clean(root, audit)
    assert run("promote", "m", root=root).returncode == 0
    assert run("publish", "m", str(src), root=root).returncode == 0


# ---------------------------------------------------------------- permission denied
@needs_root
def test_permission_denied_names_the_root_and_the_user_and_retry_works(tmpfs, tmp_path):
    root = tmpfs / "reg"
    src = blob(tmpfs / "src" / "m.pt", 1 * MB)  # readable by nobody (tmp_path is not)
    src.parent.chmod(0o755)
    assert run("publish", "m", str(src), root=root).returncode == 0
    audit = (root / "audit.jsonl").read_text()
    proc = run("publish", "m", str(src), root=root, user="nobody")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert line.startswith("error: cannot publish m: permission denied on ")
    assert line.endswith(" for user nobody"), line
    assert str(root) in line
    assert_clean(root, audit)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(root)], check=True)  # the fix
    retry = run("publish", "m", str(src), root=root, user="nobody")
    assert retry.returncode == 0, retry.stderr


@needs_root
def test_unreadable_source_names_the_source_file(tmpfs):
    root = tmpfs / "reg"
    root.mkdir()
    root.chmod(0o777)  # nobody may write the registry, not read the file
    src = blob(tmpfs / "src" / "w.pt", 1 * MB)
    src.parent.chmod(0o777)
    src.chmod(0o600)  # root's file: nobody may not read it
    proc = run("publish", "m", str(src), root=root, user="nobody")
    assert proc.returncode == 2, proc.stderr
    assert (
        error_line(proc) == f"error: cannot publish m: permission denied on {src} for user nobody"
    )
    assert not (root / "audit.jsonl").exists()
    gc = run("gc", "--json", root=root)
    assert gc.returncode == 0 and json.loads(gc.stdout)["removed"] == []
    src.chmod(0o644)  # the fix
    retry = run("publish", "m", str(src), root=root, user="nobody")
    assert retry.returncode == 0, retry.stderr


@needs_root
def test_source_in_a_folder_nobody_may_search_is_permission_denied_not_missing(tmpfs):
    root = tmpfs / "reg"
    root.mkdir()
    root.chmod(0o777)
    src = blob(tmpfs / "private" / "w.pt", 1 * MB)
    src.parent.chmod(0o700)  # root's folder: nobody may not look inside
    proc = run("publish", "m", str(src), root=root, user="nobody")
    assert proc.returncode == 2, proc.stderr
    assert error_line(proc).startswith("error: cannot publish")
    assert "permission denied" in error_line(proc) and "does not exist" not in proc.stderr
    assert not (root / "audit.jsonl").exists()
    src.parent.chmod(0o755)  # the fix
    retry = run("publish", "m", str(src), root=root, user="nobody")
    assert retry.returncode == 0, retry.stderr


# ---------------------------------------------------------------- too many open files
def run_with_fd_limit(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run(
        regctl_cmd(*args),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        preexec_fn=lower,
    )


def test_too_many_open_files_is_exit_2_and_retry_works(root, model_file):
    assert run("publish", "m", str(model_file), root=root).returncode == 0
    audit = (root / "audit.jsonl").read_text()
    proc = run_with_fd_limit(6, "--root", str(root), "publish", "m", str(model_file))
    assert proc.returncode == 2, proc.stderr
    assert error_line(proc) == "error: cannot publish m: too many open files (limit 6 per process)"
    assert "ulimit -n" in proc.stderr
    assert (root / "audit.jsonl").read_text() == audit
    assert run("publish", "m", str(model_file), root=root).returncode == 0  # the fix: a limit


def test_too_many_open_files_leaves_nothing_behind(root, model_file):
    assert run("publish", "m", str(model_file), root=root).returncode == 0
    proc = run_with_fd_limit(6, "--root", str(root), "publish", "m", str(model_file))
    assert proc.returncode == 2, proc.stderr
    gc = run("gc", "--json", root=root)
    assert json.loads(gc.stdout)["removed"] == []


# ---------------------------------------------------------------- pure parts
def test_user_path_never_shows_internal_paths(tmp_path):
    root = tmp_path / "reg"
    assert faults.user_path(root / ".regctl" / "tmp" / "publish-1" / "x", [root]) == root
    assert faults.user_path(tmp_path / "cache" / ".partial" / "f", []) == tmp_path / "cache"
    assert faults.user_path(tmp_path / "c" / "v1.incomplete" / "f", []) == tmp_path / "c"
    assert faults.user_path(tmp_path / "src" / "m.pt", [root]) == tmp_path / "src" / "m.pt"
    assert faults.user_path(None) is None


def test_translate_only_machine_faults(tmp_path):
    assert faults.translate(FileNotFoundError(errno.ENOENT, "gone"), "publish m") is None
    assert faults.translate(ValueError("x"), "publish m") is None
    many = faults.translate(OSError(errno.EMFILE, "Too many open files"), "verify")
    assert isinstance(many, MachineFault) and "too many open files (limit " in many.message
    nameless = faults.translate(OSError(errno.EROFS, "Read-only file system"), "promote m")
    assert nameless is not None and nameless.message == (
        "cannot promote m: the target is on a read-only filesystem (needs write access)"
    )
    denied = faults.translate(OSError(errno.EACCES, "Permission denied"), "promote m")
    assert denied is not None and "permission denied for user " in denied.message
    assert many.hint and "ulimit -n" in many.hint
    nolock = faults.translate(OSError(errno.ENOLCK, "No locks", str(tmp_path / "x")), "promote m",
                              tmp_path)  # fmt: skip
    assert nolock is not None and f"file locks do not work on the filesystem of {tmp_path}" in (
        nolock.message
    )
    with pytest.raises(MachineFault) as info, faults.translated("publish m", tmp_path):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".regctl" / "tmp"))
    assert info.value.message == (
        f"cannot publish m: {tmp_path} is on a read-only filesystem (needs write access)"
    )
    with pytest.raises(FileNotFoundError), faults.translated("publish m", tmp_path):
        raise FileNotFoundError(errno.ENOENT, "gone")


def test_human_sizes():
    assert faults.human_size(60 * MB) == "60 MB"
    assert faults.human_size(1_200_000_000) == "1.2 GB"
    assert faults.human_size(999) == "999 bytes"


def test_server_replies_for_machine_faults():
    assert faults.http_status(OSError(errno.ENOSPC, "full")) == 507
    assert faults.http_status(OSError(errno.EDQUOT, "quota")) == 507
    assert faults.http_status(OSError(errno.EROFS, "ro")) == 503
    assert faults.http_status(OSError(errno.EMFILE, "files")) == 503
    assert faults.http_status(FileNotFoundError(errno.ENOENT, "gone")) is None
    assert faults.ftp_reply(OSError(errno.ENOSPC, "full")) == "452"
    assert faults.ftp_reply(OSError(errno.EACCES, "denied")) == "550"
    assert faults.ftp_reply(ValueError("x")) is None
