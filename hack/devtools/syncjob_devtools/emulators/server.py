"""Serve both emulators with uvicorn: in-process for tests, or as ``syncjob-devtools emulators``.

Each app listens on a socket this module binds and owns, which is what lets
``POST /_emulator/outage`` really stop listening (clients get "connection
refused") and listen again on the same address later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from syncjob_devtools.emulators.base import emulator_core
from syncjob_devtools.emulators.sigv4 import DEFAULT_AWS_CREDENTIALS
from syncjob_devtools.emulators.throttling import DEFAULT_REQUEST_RATES, RequestRate
from syncjob_devtools.emulators.truto import TrutoConfig
from syncjob_devtools.emulators.truto import create_app as create_truto_app
from syncjob_devtools.emulators.twinmaker import MODEL_OPERATIONS, TwinMakerConfig
from syncjob_devtools.emulators.twinmaker import create_app as create_twinmaker_app

STARTUP_TIMEOUT_SECONDS = 15.0
RELISTEN_RETRY_SECONDS = 0.5

logger = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted
    # sockets whose proto says TCP, and without it Nagle plus delayed ACKs add ~40 ms
    # to every response uvicorn writes in two parts (head, then body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Lets an outage's end rebind the port while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def url_for(sock_address: tuple[Any, ...]) -> str:
    host, port = sock_address[0], sock_address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _peer(connection: Any) -> tuple[str, int] | None:
    """The client address of one of uvicorn's connection protocols."""
    peer = connection.transport.get_extra_info("peername")
    return (peer[0], peer[1]) if peer else None


class EmulatorServer(uvicorn.Server):
    """A uvicorn server on a socket we own that can go dark and come back."""

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        super().__init__(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                ws="none",
                proxy_headers=False,  # loopback only; saves a middleware per request
                timeout_graceful_shutdown=2,
            )
        )
        self.sock = sock
        self.address: tuple[Any, ...] = sock.getsockname()
        self.url = url_for(self.address)
        self.ready = threading.Event()
        self._resume_timer: asyncio.TimerHandle | None = None
        self._resuming: asyncio.Task[None] | None = None
        emulator_core(app).server = self

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        await super().shutdown(sockets=sockets)

    async def stop_listening(self, seconds: float, spare: tuple[str, int] | None) -> None:
        loop = asyncio.get_running_loop()
        for server in self.servers:
            server.close()  # closes the listening socket: new connections are refused
        self.servers = []
        self._close_connections(spare)
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        self._resume_timer = loop.call_later(seconds, self._start_resuming)
        # asyncio closes a transport's socket on the next loop iteration; let that
        # happen (FINs sent) before the caller gets its answer.
        await asyncio.sleep(0)

    async def drop_connections(self) -> None:
        self._close_connections(None)

    async def reset_connection(self, client: tuple[str, int]) -> None:
        for connection in list(self.server_state.connections):
            if _peer(connection) == client:
                # Linger 0: close() sends RST, not FIN, as a crashed front end would.
                sock = connection.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.transport.abort()
        # The protocol learns of the loss on the next loop iteration; after that the app's
        # response is discarded rather than written.
        await asyncio.sleep(0)

    def _close_connections(self, spare: tuple[str, int] | None) -> None:
        for connection in list(self.server_state.connections):
            if spare is None or _peer(connection) != spare:
                connection.transport.close()

    def _start_resuming(self) -> None:
        self._resume_timer = None
        self._resuming = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            sock = bind_socket(self.address[0], self.address[1])
        except OSError as exc:  # someone took the port meanwhile: keep trying
            logger.warning("cannot listen on %s again (%s); retrying", self.url, exc)
            self._resume_timer = loop.call_later(RELISTEN_RETRY_SECONDS, self._start_resuming)
            return
        config = self.config

        def protocol() -> asyncio.Protocol:
            # The same factory uvicorn's own startup() builds for its listeners.
            factory: Any = config.http_protocol_class
            created: asyncio.Protocol = factory(
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return created

        self.servers.append(await loop.create_server(protocol, sock=sock, backlog=config.backlog))


class RunningEmulators:
    """Both emulators on loopback ports, served from one background thread.

    ``with RunningEmulators(twinmaker=TwinMakerConfig(transition_seconds=0.2)) as emu:``
    then point clients at ``emu.twinmaker_url`` / ``emu.truto_url``.
    """

    def __init__(
        self,
        twinmaker: TwinMakerConfig | None = None,
        truto: TrutoConfig | None = None,
        *,
        host: str = "127.0.0.1",
        twinmaker_port: int = 0,
        truto_port: int = 0,
    ) -> None:
        self._configs = (twinmaker, truto)
        self._host = host
        self._ports = (twinmaker_port, truto_port)
        self._servers: list[EmulatorServer] = []
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def __enter__(self) -> RunningEmulators:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def twinmaker_url(self) -> str:
        return self._servers[0].url

    @property
    def truto_url(self) -> str:
        return self._servers[1].url

    def start(self) -> None:
        twinmaker_config, truto_config = self._configs
        sockets: list[socket.socket] = []
        try:
            for port in self._ports:
                sockets.append(bind_socket(self._host, port))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        self._servers = [
            EmulatorServer(create_twinmaker_app(twinmaker_config), sockets[0]),
            EmulatorServer(create_truto_app(truto_config), sockets[1]),
        ]
        self._thread = threading.Thread(target=self._run, name="syncjob-emulators", daemon=True)
        self._thread.start()
        for server in self._servers:
            if not server.ready.wait(STARTUP_TIMEOUT_SECONDS):
                self.stop()
                raise RuntimeError("emulators did not start") from self._failure

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
            self._thread = None

    def _run(self) -> None:
        try:
            # uvloop when installed, like uvicorn itself; plain asyncio otherwise.
            with asyncio.Runner(loop_factory=self._servers[0].config.get_loop_factory()) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # surfaced by start(); a thread cannot raise to its caller
            self._failure = exc
            for server in self._servers:
                server.ready.set()
            raise

    async def _serve(self) -> None:
        await asyncio.gather(*(server.serve(sockets=[server.sock]) for server in self._servers))


def _rate_limit(text: str) -> tuple[int, float]:
    """``N`` (per 60 s) or ``N/SECONDS``."""
    count, _, window = text.partition("/")
    try:
        return int(count), float(window or 60)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected N or N/SECONDS, e.g. 100/60") from exc


def _key_pair(text: str) -> tuple[str, str]:
    """``ACCESS_KEY_ID:SECRET_ACCESS_KEY``."""
    key, colon, secret = text.partition(":")
    if not (key and colon and secret):
        raise argparse.ArgumentTypeError("expected ACCESS_KEY_ID:SECRET_ACCESS_KEY")
    return key, secret


def _request_rate(text: str) -> tuple[str, RequestRate]:
    """``OPERATION=PER_SECOND`` or ``OPERATION=PER_SECOND/BURST`` (burst defaults to the rate)."""
    operation, _, rate = text.partition("=")
    if operation not in MODEL_OPERATIONS:
        raise argparse.ArgumentTypeError(f"{operation!r} is not a TwinMaker operation served")
    per_second, _, burst = rate.partition("/")
    try:
        value = float(per_second)
        return operation, RequestRate(per_second=value, burst=int(burst or max(1, value)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            "expected OPERATION=PER_SECOND[/BURST], e.g. CreateSyncJob=10/20"
        ) from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncjob-devtools emulators",
        description="Serve local AWS IoT TwinMaker and Truto sync-job emulators.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--twinmaker-port", type=int, default=4566, help="0 picks a free port")
    parser.add_argument("--truto-port", type=int, default=4567, help="0 picks a free port")
    parser.add_argument(
        "--persist", type=Path, metavar="DIR", help="keep state in DIR/{twinmaker,truto}.json"
    )
    parser.add_argument("--transition-seconds", type=float, default=1.0, help="per state change")
    parser.add_argument("--account-id", default="123456789012")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--aws-credentials",
        action="append",
        type=_key_pair,
        metavar="ID:SECRET",
        help="a static AWS key pair TwinMaker requests may be signed with (repeatable), accepted"
        " besides the default pairs",
    )
    parser.add_argument(
        "--twinmaker-throttling",
        action="store_true",
        help="enforce per-account, per-operation request rates (ThrottlingException, 429)",
    )
    parser.add_argument(
        "--twinmaker-rate",
        action="append",
        type=_request_rate,
        metavar="OPERATION=PER_SECOND[/BURST]",
        help="override one operation's rate (repeatable); the defaults are in docs/emulators.md",
    )
    parser.add_argument(
        "--truto-token",
        action="append",
        metavar="TOKEN",
        help="accepted bearer token (repeatable; default demo-token)",
    )
    parser.add_argument(
        "--truto-rate-limit",
        type=_rate_limit,
        metavar="N[/SECONDS]",
        help="requests per token per window (default window 60 s); unlimited if unset",
    )
    parser.add_argument(
        "--ready-file", type=Path, help='write {"twinmaker": URL, "truto": URL} here once listening'
    )
    return parser


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    persist: Path | None = args.persist
    limit, window = args.truto_rate_limit or (None, 60.0)
    emulators = RunningEmulators(
        TwinMakerConfig(
            account_id=args.account_id,
            region=args.region,
            transition_seconds=args.transition_seconds,
            persist_path=persist / "twinmaker.json" if persist else None,
            aws_credentials={**DEFAULT_AWS_CREDENTIALS, **dict(args.aws_credentials or [])},
            throttling=args.twinmaker_throttling,
            request_rates={**DEFAULT_REQUEST_RATES, **dict(args.twinmaker_rate or [])},
        ),
        TrutoConfig(
            tokens=frozenset(args.truto_token or ["demo-token"]),
            rate_limit=limit,
            rate_limit_window_seconds=window,
            transition_seconds=args.transition_seconds,
            persist_path=persist / "truto.json" if persist else None,
        ),
        host=args.host,
        twinmaker_port=args.twinmaker_port,
        truto_port=args.truto_port,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    try:
        emulators.start()
    except OSError as exc:
        print(f"syncjob-devtools emulators: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        urls = json.dumps({"twinmaker": emulators.twinmaker_url, "truto": emulators.truto_url})
        if args.ready_file is not None:
            _write_atomically(args.ready_file, urls)
        print(urls, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulators.stop()
    return 0
