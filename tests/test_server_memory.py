"""The server's malloc settings (registry_cli/server/memory.py), in real subprocesses:
capping the arenas limits how many glibc creates for new threads, and a trim hands
freed pages in the middle of the heap back to the system."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from registry_cli.server import memory

pytestmark = pytest.mark.skipif(
    memory._libc() is None, reason="needs glibc (malloc arenas and malloc_trim)"
)

ARENAS = """
import ctypes, sys, threading
from registry_cli.server import memory
if sys.argv[1] == "cap":
    assert memory.cap_arenas(2)
start = threading.Barrier(8)
keep = []
def work():
    start.wait()
    keep.append([bytes(64 * 1024) for _ in range(20)])
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS, mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


def test_capped_arenas_stay_at_two_while_threads_get_one_each_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _arenas("plain", env) > 4  # glibc's default: a new arena per new thread
    assert _arenas("cap", env) <= 2


def test_a_users_malloc_arena_max_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.cap_arenas() is False


TRIM = """
import sys
from registry_cli.server import memory

def rss_kib():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:"))

# 96 MiB in 64 KiB blocks (below the mmap threshold: from the heap), each followed by a
# small block that stays, so the freed space is holes, not the top of the heap
big, pins = [], []
for _ in range(1536):
    big.append(bytearray(64 * 1024))
    pins.append(bytearray(1024))
del big
before = rss_kib()
memory.trim()
print(before, rss_kib())
"""


def test_trim_returns_freed_holes_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", TRIM], capture_output=True, text=True, check=True
    ).stdout
    before, after = (int(x) for x in out.split())
    assert before - after > 64 * 1024, (before, after)  # KiB: most of the 96 MiB


def test_the_trimmer_trims_on_its_thread_until_stopped() -> None:
    trimmer = memory.Trimmer(interval_s=0.02)
    assert trimmer.start()
    deadline = time.monotonic() + 10
    while trimmer.trims < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    trimmer.stop()
    assert trimmer.trims >= 2
    done = trimmer.trims
    time.sleep(0.1)
    assert trimmer.trims == done  # stopped means stopped
