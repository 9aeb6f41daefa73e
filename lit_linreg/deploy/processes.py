"""Processes that end with the one that started them, even when it is killed by SIGKILL: ``lit-linreg serve``'s
workers never outlive it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """End this process when ``parent``, the process that started it, ends, even by SIGKILL.

    Linux: the kernel sends this process SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the
    parent's pid. Either way, a parent that ended before this call ends this process at once.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def tie_forked_children() -> None:
    """Every process forked from now on (LitServe's queue manager and HTTP server, which share the listening socket)
    dies with the process that forked it. The model worker, which LitServe spawns, ties itself in its ``setup``."""
    forking = os.getpid()

    def before() -> None:
        nonlocal forking
        forking = os.getpid()

    os.register_at_fork(before=before, after_in_child=lambda: die_with_parent(forking))
