"""``--workers N``: N forked processes serving one listening socket, restarted if they die."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from switchboard.server.runtime.config import FORCE_EXIT_MARGIN, Config
from switchboard.server.runtime.listen import ListenError, bind_metrics_sockets, bind_socket
from switchboard.server.runtime.startup import run_startup_checks
from switchboard.server.runtime.tls import create_ssl_context

logger = logging.getLogger("switchboard.server")


# serve(config, sock, worker=slot, metrics_sock=...): one worker's serving loop, in the child.
ServeWorker = Callable[..., None]


def run_supervised(config: Config, serve: ServeWorker) -> None:
    """Fork ``config.workers`` processes that each run ``serve`` (``server.serve_forever``,
    passed in so that the supervisor does not import the server) on one shared socket."""
    # Said before the app (and Django) is imported: with no CHANNEL_LAYERS setting, the
    # layer registry then gives the workers a layer they share (see layers/registry.py).
    os.environ["SWITCHBOARD_WORKERS"] = str(config.workers)
    config.load()  # fail fast in the parent on a bad import string
    run_startup_checks(config)  # ... and on a setup the application's framework refuses
    create_ssl_context(config)  # ... and on unusable certificate files
    sock = bind_socket(config)
    try:
        # Bound here, like the server's socket: a replacement worker inherits its slot's.
        metrics_socks = bind_metrics_sockets(config)
    except ListenError:
        sock.close()
        raise
    children: dict[int, int] = {}  # pid -> slot, until reaped
    stopping = False
    # A worker ends itself within timeout_graceful_shutdown + FORCE_EXIT_MARGIN (+ a little);
    # one that does not (it ignores SIGTERM, say) is killed once this has passed.
    kill_after = config.timeout_graceful_shutdown + 2 * FORCE_EXIT_MARGIN

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            code = 0
            for other, metrics_sock in enumerate(metrics_socks):
                if other != slot:
                    metrics_sock.close()  # this process's copy only
            try:
                mine = metrics_socks[slot] if metrics_socks else None
                serve(config, sock, worker=slot, metrics_sock=mine)
            except BaseException:  # noqa: BLE001
                logger.exception("Worker %d crashed", os.getpid())
                code = 1
            os._exit(code)
        children[pid] = slot

    def signal_all(sig: int) -> None:
        for pid in list(children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            # SIGALRM interrupts os.wait() below, however many workers still run.
            signal.setitimer(signal.ITIMER_REAL, kill_after)
        signal_all(signal.SIGTERM)

    def kill_stragglers(_signum: int, _frame: object) -> None:
        if children:
            logger.error(
                "Killing %d worker(s) still running %ss after SIGTERM", len(children), kill_after
            )
            signal_all(signal.SIGKILL)

    def reload(_signum: int, _frame: object) -> None:
        # Rolling restart: replace workers one at a time; each old one drains gracefully.
        for pid in list(children):
            if stopping:  # a SIGTERM came during the restart: start nothing more
                return
            spawn(children[pid])
            # Bounded like a stop; the old worker stays in children until reaped, so a stop
            # arriving meanwhile signals it too.
            deadline = time.monotonic() + kill_after
            _signal_unless_reaped(pid, signal.SIGTERM)
            killed = False
            while _signal_unless_reaped(pid, 0):
                if not killed and time.monotonic() >= deadline:
                    logger.error("Killing worker %d still running after SIGTERM", pid)
                    killed = _signal_unless_reaped(pid, signal.SIGKILL)
                time.sleep(0.05)
            children.pop(pid, None)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGALRM, kill_stragglers)
    for slot in range(config.workers):
        if stopping:  # stopped while starting: the workers already running were told
            break
        spawn(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        dead = children.pop(pid, None)
        if dead is not None and not stopping:
            logger.warning("Worker %d exited (status %d); starting a new one", pid, status)
            time.sleep(0.1)
            spawn(dead)
    signal.setitimer(signal.ITIMER_REAL, 0)
    sock.close()
    for metrics_sock in metrics_socks:
        metrics_sock.close()


def _signal_unless_reaped(pid: int, sig: int) -> bool:
    """Send ``sig`` (0: none) to a child unless it has exited (it is reaped then): running?"""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
        if sig:
            os.kill(pid, sig)
    except (ChildProcessError, ProcessLookupError):
        return False  # already reaped elsewhere
    return True
