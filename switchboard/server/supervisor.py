"""``--workers N``: N forked processes serving one listening socket, restarted if they die."""

from __future__ import annotations

import logging
import os
import signal
import time

from switchboard.server.config import Config

logger = logging.getLogger("switchboard.server")


def run_supervised(config: Config) -> None:
    from switchboard.server.server import bind_socket, serve_forever

    config.load()  # fail fast in the parent on a bad import string
    sock = bind_socket(config)
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            code = 0
            try:
                serve_forever(config, sock)
            except BaseException:  # noqa: BLE001
                logger.exception("Worker %d crashed", os.getpid())
                code = 1
            os._exit(code)
        children[pid] = slot

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def reload(_signum: int, _frame: object) -> None:
        # Rolling restart: replace workers one at a time; each old one drains gracefully.
        for pid in list(children):
            slot = children.pop(pid)
            spawn(slot)
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for slot in range(config.workers):
        spawn(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, None)
        if slot is not None and not stopping:
            logger.warning("Worker %d exited (status %d); starting a new one", pid, status)
            time.sleep(0.1)
            spawn(slot)
    sock.close()
