"""``regctl pull``: fetch a version from a served tree, verify it, unpack it into the cache.

Cache layout (one folder per source, stage, model and version)::

    <cache>/regctl/
      <source-key>/               "<host>_<port>" for ftp:// and ftps://,
                                  "local_<16 hex of sha256(real path)>" for --from PATH
        <stage>/<name>/           <name> may be nested: team/project/task
          vN/                     complete and verified; never changed afterwards
            manifest.json
            payload/...           read-only files
            .regctl-pull.json     source, bundle sha256/size, time of the pull
          .vN.<pid>-<rand>.incomplete   a download in progress
          .vN.<pid>-<rand>.unpack/      an unpack in progress
      .locks/                     best-effort per-version locks

``<cache>`` is ``--cache-dir``, else ``$REGCTL_CACHE_DIR``, else ``pull.cache_dir``
in the config, else the torch hub folder: ``$TORCH_HOME/hub``, else
``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub`` (computed without
importing torch).

A pull: resolve the version (``LATEST.json`` for ``latest``, ``index.json``
for ``vN``); if ``vN/`` is already cached and intact, done (no download, and
for an explicit ``vN`` no network at all). Otherwise download the bundle to a
unique ``*.incomplete`` file while hashing it, check size and sha256, unpack
it into a unique folder beside the target (each tar member must be a regular
file or folder under ``payload/`` or ``manifest.json``, and passes tarfile's
``data`` filter), check every file against ``manifest.json`` (exactly the
listed files, each with its size and sha256), then rename the folder to
``vN``. Whatever fails, the temp file and folder are removed, so the cache
never holds a partial or unverified version. Two processes pulling the same
version both succeed: the first rename wins and the other uses the winner's
folder. A lock file avoids the duplicate download where ``flock`` works, but
correctness never depends on it.

Nothing is fsynced: after a power loss a cached version may be damaged;
``pull`` checks file sizes on every cache hit and downloads again when they
do not match (or delete the ``vN`` folder).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import tarfile
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.documents import ManifestFormatError, preferred_weight, validate_manifest
from registry_cli.core.names import (
    ALIAS_RE,
    format_version,
    parse_version,
    validate_model_name,
)
from registry_cli.core.served.tree import INDEX_FORMAT, LATEST_KIND, parse_index
from registry_cli.errors import BadInput, IntegrityError, NotFound
from registry_cli.ftp.transport import CHUNK, FtpTransport, HashingSink, LocalTransport, Transport
from registry_cli.storage.atomic import remove_tree
from registry_cli.storage.layout import inside

MARKER = ".regctl-pull.json"
DEFAULT_PORT = 2121
SMALL_LIMIT = 64 << 20  # index.json of a model with very many versions stays far below this
PullProgress = Callable[[str, int], "Callable[[int], None] | None"]
"""Called with a phase ("download", "unpack") and its byte total; returns a per-chunk callback."""


# ---------------------------------------------------------------- cache location
def default_cache_root() -> Path:
    """The torch hub folder, computed the way ``torch.hub.get_dir()`` does, without torch."""
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(os.path.expanduser(torch_home)) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(os.path.expanduser(xdg)) if xdg else Path.home() / ".cache"
    return base / "torch" / "hub"


def resolve_cache_root(
    explicit: str | os.PathLike[str] | None = None, configured: str | os.PathLike[str] | None = None
) -> Path:
    """``--cache-dir``, else ``$REGCTL_CACHE_DIR``, else the config, else the torch hub dir."""
    chosen = explicit or os.environ.get("REGCTL_CACHE_DIR") or configured
    if chosen:
        return Path(os.path.expanduser(str(chosen))).absolute()
    return default_cache_root().absolute()


# ---------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """Where to pull from: an FTP(S) server or a served tree (or registry root) on disk."""

    kind: str  # "ftp" | "local"
    host: str = ""
    port: int = DEFAULT_PORT
    user: str | None = None
    tls: bool = False
    base: str = "/"
    tree: Path | None = None

    @property
    def key(self) -> str:
        """The cache folder of this source (see the module docstring)."""
        if self.kind == "ftp":
            return f"{self.host.replace(':', '-')}_{self.port}"
        digest = hashlib.sha256(str(self.tree).encode()).hexdigest()[:16]
        return f"local_{digest}"

    @property
    def display(self) -> str:
        if self.kind == "local":
            return str(self.tree)
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        base = "" if self.base == "/" else self.base
        return f"{'ftps' if self.tls else 'ftp'}://{user}{host}:{self.port}{base}"


def parse_source(text: str | os.PathLike[str]) -> Source:
    """``ftp://[USER@]HOST[:PORT][/BASE]``, ``ftps://...``, or a folder.

    A folder may be a registry root (its ``dist/`` is served) or a served tree.
    A password in the URL is refused: it would end up in shell history and ``ps``.
    """
    raw = os.fspath(text)
    if "://" in raw:
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("ftp", "ftps"):
            raise BadInput(
                f"unsupported source {raw!r}",
                hint="use ftp://USER@HOST:PORT, ftps://..., or a folder",
            )
        if parts.password is not None:
            raise BadInput(
                "a password inside the --from URL is refused",
                hint="give it with --password-env VAR (or type it at the prompt)",
            )
        if not parts.hostname:
            raise BadInput(f"no host in {raw!r}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise BadInput(f"invalid port in {raw!r}") from None
        user = urllib.parse.unquote(parts.username) if parts.username else None
        return Source(
            kind="ftp",
            host=parts.hostname,
            port=port,
            user=user,
            tls=parts.scheme == "ftps",
            base=parts.path or "/",
        )
    path = Path(os.path.expanduser(raw)).absolute()
    if (path / "dist").is_dir() and (path / "models").is_dir():
        path = path / "dist"
    elif (path / "models").is_dir():
        raise NotFound(
            f"the registry at {path} has no dist/ folder",
            hint=f"create it with: regctl --root {path} dist rebuild",
        )
    return Source(kind="local", tree=Path(os.path.realpath(path)))


# ---------------------------------------------------------------- results
@dataclass
class PullResult:
    name: str
    stage: str
    version: str
    path: Path
    preferred_weight_path: Path
    cached: bool
    sha256: str
    size: int
    source: str
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    offline: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "version": self.version,
            "path": str(self.path),
            "preferred_weight_path": str(self.preferred_weight_path),
            "cached": self.cached,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
            "offline": self.offline,
        }


@dataclass(frozen=True)
class _Wanted:
    version: int
    sha256: str
    size: int


# ---------------------------------------------------------------- the puller
class Puller:
    """Pulls versions from one source into one cache root."""

    def __init__(
        self,
        source: Source,
        *,
        password: str | Callable[[], str] | None = None,
        cache_root: Path | None = None,
        ca_cert: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.source = source
        self._password = password
        self.cache_root = cache_root or resolve_cache_root()
        self.ca_cert = ca_cert
        self.timeout = timeout

    # -- paths ---------------------------------------------------------
    def model_cache(self, stage: str, name: str) -> Path:
        return inside(self.cache_root / "regctl", self.source.key, stage, *name.split("/"))

    def _open(self) -> Transport:
        if self.source.kind == "ftp":
            if callable(self._password):  # e.g. a prompt: asked once, only when needed
                self._password = self._password()
            return FtpTransport(
                self.source.host,
                self.source.port,
                user=self.source.user,
                password=self._password,
                tls=self.source.tls,
                ca_cert=self.ca_cert,
                timeout=self.timeout,
                base=self.source.base,
            )
        assert self.source.tree is not None
        return LocalTransport(self.source.tree)

    # -- resolving -----------------------------------------------------
    def _read_json(self, transport: Transport, relpath: str) -> Any:
        data = transport.read_small(relpath, SMALL_LIMIT)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise IntegrityError(
                f"{relpath} on {transport.description} is not valid JSON ({exc})"
            ) from None

    def _resolve_remote(
        self, transport: Transport, stage: str, name: str, version: int | None
    ) -> _Wanted:
        where = f"{stage}/{name}"
        if version is None:
            try:
                doc = self._read_json(transport, f"{where}/LATEST.json")
            except NotFound:
                raise NotFound(
                    f"{name} has no LATEST in stage {stage!r} on {transport.description}",
                    hint="check the name and --stage, or ask for a version with --version vN",
                ) from None
            if (
                not isinstance(doc, dict)
                or doc.get("kind", LATEST_KIND) != LATEST_KIND
                or doc.get("format_version", INDEX_FORMAT) != INDEX_FORMAT
            ):
                raise IntegrityError(f"{where}/LATEST.json is not a regctl LATEST document")
            try:
                return _Wanted(parse_version(doc["version"]), str(doc["sha256"]), int(doc["size"]))
            except (KeyError, TypeError, ValueError, BadInput) as exc:
                raise IntegrityError(f"{where}/LATEST.json is malformed ({exc})") from None
        try:
            data = transport.read_small(f"{where}/index.json", SMALL_LIMIT)
        except NotFound:
            raise NotFound(
                f"no model {name!r} in stage {stage!r} on {transport.description}",
                hint="check the name and --stage",
            ) from None
        _doc, entries = parse_index(data, f"{where}/index.json on {transport.description}")
        for entry in entries:
            if entry.version == version:
                return _Wanted(entry.version, entry.sha256, entry.size)
        raise NotFound(
            f"{name}:{format_version(version)} is not in stage {stage!r} on "
            f"{transport.description}",
            hint=f"its versions: {', '.join(format_version(e.version) for e in entries)}"
            if entries
            else None,
        )

    # -- the cache -----------------------------------------------------
    def _cached(self, vdir: Path, name: str, version: int) -> tuple[dict, dict] | None:
        """``(marker, manifest)`` of an intact cached version, else None (cheap: stats only)."""
        try:
            marker = json.loads((vdir / MARKER).read_bytes())
            with open(vdir / "manifest.json", "rb") as fh:
                manifest = validate_manifest(json.load(fh), str(vdir / "manifest.json"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(marker, dict)
            or manifest["name"] != name
            or manifest["version"] != format_version(version)
        ):
            return None
        for f in manifest["files"]:
            try:
                st = os.lstat(vdir / f["path"])
            except OSError:
                return None
            if (
                not os.path.isfile(vdir / f["path"])
                or os.path.islink(vdir / f["path"])
                or st.st_size != f["size"]
            ):
                return None
        return marker, manifest

    def cached_versions(self, stage: str, name: str) -> list[int]:
        """Intact cached versions of a model, newest first."""
        mcache = self.model_cache(stage, name)
        found = []
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.listdir(mcache):
                if not entry.startswith("v"):
                    continue
                try:
                    number = parse_version(entry)
                except BadInput:
                    continue
                if entry == format_version(number) and self._cached(mcache / entry, name, number):
                    found.append(number)
        return sorted(found, reverse=True)

    def _result(
        self,
        stage: str,
        name: str,
        vdir: Path,
        marker: dict,
        manifest: dict,
        cached: bool,
        offline: bool = False,
    ) -> PullResult:
        paths = [f["path"] for f in manifest["files"]]
        pref = manifest.get("preferred_weight")
        if pref not in paths and pref != "payload":
            pref = preferred_weight(paths)
        return PullResult(
            name=name,
            stage=stage,
            version=manifest["version"],
            path=vdir,
            preferred_weight_path=vdir / str(pref),
            cached=cached,
            sha256=str(marker.get("sha256", "")),
            size=int(marker.get("size", 0)),
            source=str(marker.get("source", self.source.display)),
            manifest=manifest,
            offline=offline,
        )

    # -- pull ----------------------------------------------------------
    def pull(
        self,
        name: str,
        *,
        stage: str,
        version: str | int = "latest",
        offline: bool = False,
        progress: PullProgress | None = None,
    ) -> PullResult:
        """Resolve, fetch, verify and unpack; see the module docstring."""
        started = time.perf_counter()
        validate_model_name(name)
        if not ALIAS_RE.match(stage or ""):
            raise BadInput(f"invalid stage {stage!r}")
        number = None if str(version) == "latest" else parse_version(version)
        mcache = self.model_cache(stage, name)

        if number is not None:
            vdir = mcache / format_version(number)
            hit = self._cached(vdir, name, number)
            if hit is not None:
                return self._result(stage, name, vdir, *hit, cached=True, offline=offline)
        if offline:
            if number is not None:
                raise NotFound(
                    f"{name}:{format_version(number)} ({stage}) is not in the cache at {mcache}",
                    hint="pull it once without --offline",
                )
            versions = self.cached_versions(stage, name)
            if not versions:
                raise NotFound(
                    f"no cached version of {name} ({stage}) at {mcache}",
                    hint="pull it once without --offline",
                )
            vdir = mcache / format_version(versions[0])
            hit = self._cached(vdir, name, versions[0])
            assert hit is not None
            return self._result(stage, name, vdir, *hit, cached=True, offline=True)

        transport = self._open()
        try:
            wanted = self._resolve_remote(transport, stage, name, number)
            vdir = mcache / format_version(wanted.version)
            hit = self._cached(vdir, name, wanted.version)
            if hit is not None and hit[0].get("sha256") == wanted.sha256:
                return self._result(stage, name, vdir, *hit, cached=True)
            with self._best_effort_lock(stage, name, wanted.version):
                hit = self._cached(vdir, name, wanted.version)
                if hit is not None and hit[0].get("sha256") == wanted.sha256:
                    return self._result(stage, name, vdir, *hit, cached=True)
                result = self._fetch(transport, stage, name, wanted, vdir, progress)
        finally:
            transport.close()
        result.timings["total_s"] = time.perf_counter() - started
        return result

    @contextlib.contextmanager
    def _best_effort_lock(self, stage: str, name: str, version: int):  # type: ignore[no-untyped-def]
        from filelock import FileLock, Timeout

        key = hashlib.sha256(f"{self.source.key}/{stage}/{name}/v{version}".encode()).hexdigest()
        lock_dir = self.cache_root / "regctl" / ".locks"
        lock = None
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(lock_dir / f"{key[:32]}.lock"), timeout=max(self.timeout * 20, 600))
            lock.acquire()
        except (OSError, Timeout):
            lock = None  # no working locks here (some network filesystems): go on without
        try:
            yield
        finally:
            if lock is not None:
                lock.release()

    def _fetch(
        self,
        transport: Transport,
        stage: str,
        name: str,
        wanted: _Wanted,
        vdir: Path,
        progress: PullProgress | None,
    ) -> PullResult:
        vname = format_version(wanted.version)
        relpath = f"{stage}/{name}/versions/{vname}/bundle.tar.gz"
        created_parent = not vdir.parent.exists()
        vdir.parent.mkdir(parents=True, exist_ok=True)
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        incomplete = vdir.parent / f".{vname}.{tag}.incomplete"
        unpack_dir = vdir.parent / f".{vname}.{tag}.unpack"
        timings: dict[str, float] = {}
        ok = False
        try:
            t0 = time.perf_counter()
            fd = os.open(incomplete, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                size, digest = transport.download(
                    relpath, fd, progress("download", wanted.size) if progress else None
                )
            finally:
                os.close(fd)
            if size != wanted.size:
                raise IntegrityError(
                    f"{relpath} from {transport.description}: got {size} bytes, "
                    f"index says {wanted.size}",
                    hint="the served bundle is damaged; run `regctl verify` on the server",
                )
            if digest != wanted.sha256:
                raise IntegrityError(
                    f"{relpath} from {transport.description}: sha256 {digest} != "
                    f"{wanted.sha256} recorded in the index",
                    hint="the served bundle is damaged or tampered with; run `regctl verify` "
                    "on the server",
                )
            timings["download_s"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            unpack_dir.mkdir()
            digests = unpack_bundle(
                incomplete, unpack_dir, progress("unpack", wanted.size) if progress else None
            )
            os.unlink(incomplete)
            manifest = check_against_manifest(unpack_dir, digests, name, vname)
            marker = {
                "format_version": 1,
                "kind": "regctl/pull",
                "name": name,
                "stage": stage,
                "version": vname,
                "sha256": wanted.sha256,
                "size": wanted.size,
                "source": self.source.display,
                "pulled_at": _dt.datetime.now(_dt.timezone.utc)
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z"),
            }
            (unpack_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            _read_only_files(unpack_dir)

            def intact() -> bool:
                hit = self._cached(vdir, name, wanted.version)
                return hit is not None and hit[0].get("sha256") == wanted.sha256

            installed = _install(unpack_dir, vdir, intact)
            timings["unpack_s"] = time.perf_counter() - t1
            hit = self._cached(vdir, name, wanted.version)
            if hit is None:
                raise IntegrityError(f"{vdir} was damaged right after it was installed")
            ok = True
            result = self._result(
                stage, name, vdir, marker if installed else hit[0], manifest, cached=not installed
            )
            result.timings.update(timings)
            return result
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(incomplete)
            remove_tree(unpack_dir)
            if not ok and created_parent:
                _remove_empty_parents(vdir.parent, self.cache_root / "regctl")


# ---------------------------------------------------------------- unpack + check
def _check_member(member: tarfile.TarInfo) -> str:
    """Our own rules before tarfile's ``data`` filter (which silently strips a leading '/')."""
    name = member.name
    if not name or "\0" in name or "\\" in name:
        raise IntegrityError(f"hostile bundle: bad member name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise IntegrityError(f"hostile bundle: absolute path {name!r}")
    parts = name.rstrip("/").split("/")
    if any(p in ("..", "") for p in parts):
        raise IntegrityError(f"hostile bundle: {name!r} leaves its folder")
    if member.issym() or member.islnk():
        raise IntegrityError(f"hostile bundle: {name!r} is a link")
    if member.isdev() or member.isfifo():
        raise IntegrityError(f"hostile bundle: {name!r} is a device or fifo")
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise IntegrityError(f"hostile bundle: {name!r} is not a regular file or folder")
    clean = "/".join(p for p in parts if p != ".")
    if clean != "manifest.json" and clean != "payload" and not clean.startswith("payload/"):
        raise IntegrityError(
            f"unexpected member {name!r}: a bundle holds payload/ and manifest.json only"
        )
    if clean == "manifest.json" and not member.isreg():
        raise IntegrityError("hostile bundle: manifest.json is not a file")
    return clean


class _Inflater:
    """A forward-only, seekable view of a gzip file's decompressed bytes.

    tarfile reads headers through :meth:`read`/:meth:`seek` ("r:" mode never seeks
    back when members are read in order); member data is taken with
    :meth:`chunks` as views of the inflated blocks, without the extra copies of
    tarfile's stream mode. Output per step is capped, so a gzip bomb cannot
    inflate a whole file into memory at once.
    """

    name = None

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(31)
        self._buf = memoryview(b"")
        self._pos = 0

    def _more(self) -> bool:
        while not self._buf:
            if self._z.eof:
                return False
            data = self._z.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                raise IntegrityError("corrupt bundle: the gzip stream is truncated")
            self._buf = memoryview(self._z.decompress(data, 4 * CHUNK))
        return True

    def chunks(self, n: int) -> Any:
        """Yield the next ``n`` bytes as memoryviews."""
        while n > 0:
            if not self._more():
                raise IntegrityError("corrupt bundle: it ends inside a file")
            take = self._buf[:n]
            self._buf = self._buf[len(take) :]
            self._pos += len(take)
            n -= len(take)
            yield take

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while (n < 0 or len(out) < n) and self._more():
            take = self._buf[: (n - len(out)) if n >= 0 else len(self._buf)]
            out += take
            self._buf = self._buf[len(take) :]
            self._pos += len(take)
        return bytes(out)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise IntegrityError("corrupt bundle: its members are not in order")
        for _ in self.chunks(pos - self._pos):
            pass
        return self._pos

    def finish(self) -> None:
        """Read to the end of the gzip stream, so its CRC and length are checked."""
        while self._more():
            self._pos += len(self._buf)
            self._buf = memoryview(b"")


def unpack_bundle(
    bundle: Path, dest: Path, progress: Callable[[int], None] | None = None
) -> dict[str, tuple[int, str]]:
    """Unpack ``bundle`` into the empty folder ``dest``; return ``{path: (size, sha256)}``.

    Every member is checked by :func:`_check_member` and by tarfile's ``data``
    filter; file contents are hashed while they are written.
    """
    out: dict[str, tuple[int, str]] = {}
    dest_str = os.fspath(dest)
    try:
        with open(bundle, "rb", buffering=0) as raw:
            stream = _Inflater(raw)
            tar = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]
            for member in tar:
                clean = _check_member(member)
                try:
                    filtered = tarfile.data_filter(member, dest_str)
                except tarfile.FilterError as exc:
                    raise IntegrityError(f"hostile bundle: {exc}") from None
                if filtered is None:
                    raise IntegrityError(f"hostile bundle: member {member.name!r} refused")
                target = dest / clean
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if clean in out:
                    raise IntegrityError(f"hostile bundle: {clean!r} appears twice")
                target.parent.mkdir(parents=True, exist_ok=True)
                stream.seek(member.offset_data)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                try:
                    sink = HashingSink(fd)
                    try:
                        for view in stream.chunks(member.size):
                            sink.submit(view)
                            if progress is not None:
                                progress(len(view))
                    finally:
                        size, digest = sink.finish()
                finally:
                    os.close(fd)
                out[clean] = (size, digest)
            stream.finish()
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        raise IntegrityError(f"corrupt bundle {bundle.name}: {exc}") from None
    except FileExistsError as exc:
        raise IntegrityError(f"hostile bundle: {exc.filename} would be written twice") from None
    return out


def check_against_manifest(
    vdir: Path, digests: dict[str, tuple[int, str]], name: str, vname: str
) -> dict[str, Any]:
    """Every unpacked file is listed in ``manifest.json`` with its size and sha256, and back."""
    if "manifest.json" not in digests:
        raise IntegrityError("corrupt bundle: it has no manifest.json")
    try:
        with open(vdir / "manifest.json", "rb") as fh:
            manifest = validate_manifest(json.load(fh), "manifest.json in the bundle")
    except (ValueError, ManifestFormatError) as exc:
        raise IntegrityError(f"corrupt bundle: {exc}") from None
    if manifest["name"] != name or manifest["version"] != vname:
        raise IntegrityError(
            f"the bundle holds {manifest['name']}:{manifest['version']}, not {name}:{vname}"
        )
    listed = {f["path"]: f for f in manifest["files"]}
    present = {p for p in digests if p != "manifest.json"}
    for path in sorted(set(listed) - present):
        raise IntegrityError(f"corrupt bundle: {path} is in the manifest but not in the bundle")
    for path in sorted(present - set(listed)):
        raise IntegrityError(f"corrupt bundle: {path} is not in the manifest")
    for path, f in sorted(listed.items()):
        size, digest = digests[path]
        if size != f["size"] or digest != f["sha256"]:
            raise IntegrityError(
                f"{path}: sha256 {digest} ({size} bytes) does not match the "
                f"manifest ({f['sha256']}, {f['size']} bytes)"
            )
    return manifest


def _read_only_files(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            os.chmod(os.path.join(dirpath, fname), 0o444)


def _install(tmp: Path, target: Path, intact: Callable[[], bool]) -> bool:
    """Rename ``tmp`` to ``target``. False if an intact ``target`` was there first."""
    try:
        os.rename(tmp, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
    if intact():
        return False  # a concurrent pull installed it first: use theirs
    aside = target.with_name(f".{target.name}.broken-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(target, aside)  # a damaged or stale copy: replace it
    try:
        os.rename(tmp, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not intact():
            raise
        return False
    finally:
        remove_tree(aside)


def _remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while empty, never ``stop`` or above."""
    stop = stop.absolute()
    path = path.absolute()
    while path != stop and stop in path.parents:
        try:
            os.rmdir(path)
        except OSError:
            return
        path = path.parent
