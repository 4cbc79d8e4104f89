"""Replicas of serve-registry on one root, with no sticky sessions (see
docs/operations.md, "Replicas"): two real servers over one folder and over one s3://
root on moto's S3 server. A web UI session opened through one is honoured by the
other, a sign-out and a token revocation hold on both within ``server.token_cache_s``,
sessions are kept in the root as hashes only, and concurrent writes through both
keep distinct version numbers and one champion."""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path

import httpx
import pytest

from registry_cli import ModelRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow

CACHE_S = "1"  # server.token_cache_s, small: the test waits for it to pass
SAME = {"Sec-Fetch-Site": "same-origin"}


def _replicas(root, tmp: Path) -> list[ServeRegistryProcess]:
    env = {**server_env(tmp), "REGCTL_TOKEN_CACHE_S": CACHE_S}
    procs = []
    for name in ("a", "b"):
        proc = ServeRegistryProcess(root, log=tmp / f"server-{name}.log", env=env)
        procs.append(proc.start())
    return procs


def _eventually(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _sign_in(url: str, secret: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as c:
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/sign-in").text).group(1)
        reply = c.post("/sign-in", data={"token": secret, "csrf": csrf, "next": "/"}, headers=SAME)
        assert reply.status_code == 303, reply.text
        return reply.cookies["regctl_session"]


def _page(url: str, cookie: str, path: str = "/") -> httpx.Response:
    return httpx.get(url + path, cookies={"regctl_session": cookie}, timeout=30)


def _signed_in_as(reply: httpx.Response, name: str) -> bool:
    return reply.status_code == 200 and name in reply.text and "/sign-out" in reply.text


def _keys_under(root, folder: str) -> dict[str, bytes]:
    if isinstance(root, Path):
        base = root / folder
        return {p.name: p.read_bytes() for p in base.iterdir()} if base.is_dir() else {}
    found = {}
    listing = root.client.list_objects_v2(Bucket=root.bucket, Prefix=f"{root.key}/{folder}/")
    for obj in listing.get("Contents", []):
        body = root.client.get_object(Bucket=root.bucket, Key=obj["Key"])["Body"].read()
        found[obj["Key"].rsplit("/", 1)[-1]] = body
    return found


@pytest.mark.parametrize("backend", ["folder", "s3"], indirect=True)
def test_sessions_and_revocations_hold_on_every_replica(root, tmp_path):
    tokens = make_root(root, ("read", "promote"))
    a, b = _replicas(root, tmp_path)
    try:
        cookie = _sign_in(a.url, tokens["promote"])
        assert _signed_in_as(_page(b.url, cookie), "tok-promote")  # no sticky sessions
        assert _signed_in_as(_page(a.url, cookie), "tok-promote")

        # the root keeps hashes only: no cookie and no token secret in it
        stored = _keys_under(root, ".regctl/sessions")
        assert len(stored) == 1
        assert all(
            cookie not in name and cookie.encode() not in body for name, body in stored.items()
        )
        assert not any(s.encode() in body for s in tokens.values() for body in stored.values())

        # a sign-out through B ends the session on A
        with httpx.Client(base_url=b.url, cookies={"regctl_session": cookie}, timeout=30) as c:
            csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1)
            assert c.post("/sign-out", data={"csrf": csrf}, headers=SAME).status_code == 303
        assert _eventually(lambda: not _signed_in_as(_page(a.url, cookie), "tok-promote"))

        # a revocation (here by the CLI's code on the root) holds on both replicas
        read = {"Authorization": f"Bearer {tokens['read']}"}
        for srv in (a, b):
            assert httpx.get(f"{srv.url}/api/v1/models", headers=read).status_code == 200
        second = _sign_in(b.url, tokens["read"])
        assert _signed_in_as(_page(a.url, second), "tok-read")
        reg = ModelRegistry(root)
        Tokens(reg.store, reg.states, "admin").revoke("tok-read")
        for srv in (a, b):
            assert _eventually(
                lambda srv=srv: (
                    httpx.get(f"{srv.url}/api/v1/models", headers=read).status_code == 401
                )
            )
            assert _eventually(
                lambda srv=srv: not _signed_in_as(_page(srv.url, second), "tok-read")
            )
    finally:
        for srv in (a, b):
            assert srv.stop() == 0, srv.log


def test_concurrent_writes_through_two_replicas_on_s3(s3_root, tmp_path):
    root = s3_root
    tokens = make_root(root, ("publish", "promote", "read"))
    a, b = _replicas(root, tmp_path)
    try:
        publish = {"Authorization": f"Bearer {tokens['publish']}"}

        def one(i: int) -> int:
            url = (a if i % 2 else b).url
            reply = httpx.post(
                f"{url}/api/v1/models/team/ppe/-/versions",
                files=[("file", ("w.bin", f"weights {i}".encode(), "application/octet-stream"))],
                headers=publish,
                timeout=120,
            )
            assert reply.status_code == 201, reply.text
            return int(reply.json()["version"].lstrip("v"))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            numbers = list(pool.map(one, range(12)))
        assert sorted(numbers) == list(range(1, 13))  # distinct, none lost, none skipped

        promote = {"Authorization": f"Bearer {tokens['promote']}"}

        def promote_one(args: tuple[ServeRegistryProcess, int]) -> dict:
            srv, version = args
            reply = httpx.post(
                f"{srv.url}/api/v1/models/team/ppe/-/promote",
                json={"version": version, "to": "release"},
                headers=promote,
                timeout=120,
            )
            assert reply.status_code == 200, reply.text
            return reply.json()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(promote_one, [(a, 3), (b, 6), (a, 9), (b, 11)]))
        versions = ModelRegistry(root).list_versions("team/ppe")
        champions = [v.version for v in versions if "champion" in v.aliases]
        assert len(champions) == 1 and champions[0] in (3, 6, 9, 11)
        promotes = [
            e for e in ModelRegistry(root).audit("team/ppe").entries if e["action"] == "promote"
        ]
        assert len(promotes) == 4  # each promote once, none lost
        assert promotes[-1]["version"] == f"v{champions[0]}"  # the last one is the champion
    finally:
        for srv in (a, b):
            assert srv.stop() == 0, srv.log
