"""What both emulators share: counters, faults, the server hook (outages, dropped connections)
and the ``/_emulator`` admin API."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from syncjob_devtools.emulators.faults import CallCounters, DropConnection, FaultBook, FaultRule

ADMIN_PREFIX = "/_emulator"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client went away

logger = logging.getLogger("syncjob_devtools.emulators")


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that disconnects mid-request (an operator SIGKILLed by a crash test) is one
    quiet line, not a traceback: nobody reads the answer."""
    logger.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _drop_connection(request: Request, exc: Exception) -> Response:
    """A fault's dropped connection: reset the caller's connection, so no response reaches it."""
    client = request.scope.get("client")
    server = emulator_core(request.app).server
    if server is not None and client:
        await server.reset_connection((client[0], client[1]))
    # Never sent: the transport is gone (faults that drop need a server, see _add_fault).
    return Response(status_code=CLIENT_CLOSED_REQUEST)


EXCEPTION_HANDLERS: Mapping[Any, Callable[[Request, Exception], Any]] = {
    ClientDisconnect: _client_gone,
    DropConnection: _drop_connection,
}

M = TypeVar("M", bound=BaseModel)


class ServerControl(Protocol):
    """Implemented by the server that owns the listening socket (see ``server.py``)."""

    async def stop_listening(self, seconds: float, spare: tuple[str, int] | None) -> None:
        """Close the listener and every connection but ``spare`` (a client address) now;
        listen again on the same address after ``seconds``."""

    async def drop_connections(self) -> None:
        """Close every connection still open (the spared one, once it has its answer)."""

    async def reset_connection(self, client: tuple[str, int]) -> None:
        """Abort the connection from ``client`` with a TCP reset, before any response."""


class ResetRequest(BaseModel):
    """Body of ``POST /_emulator/reset``; an empty body resets everything."""

    model_config = ConfigDict(extra="forbid")

    state: bool = True
    counters: bool = True
    faults: bool = True


class OutageRequest(BaseModel):
    """Body of ``POST /_emulator/outage``."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=3600)


class AdminBodyError(Exception):
    def __init__(self, detail: Any) -> None:
        super().__init__(detail)
        self.detail = detail


async def parse_admin_body(request: Request, model: type[M], *, empty_ok: bool = False) -> M:
    body = await request.body()
    try:
        if not body.strip() and empty_ok:
            return model()
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise AdminBodyError(json.loads(exc.json(include_url=False))) from exc


def admin_error(detail: Any, status: int = 422) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class EmulatorCore:
    """Per-app counters, faults and the server hook, plus the shared admin routes.

    ``reset_state`` forgets the emulated service's objects; ``complete_fault``
    fills in the service's defaults for a new fault rule (e.g. the status of a
    TwinMaker error code) or raises ValueError when the rule makes no sense there.
    """

    def __init__(
        self,
        *,
        reset_state: Callable[[], None],
        complete_fault: Callable[[FaultRule], FaultRule],
    ) -> None:
        self.counters = CallCounters()
        self.faults = FaultBook(self.counters)
        # Set by the server that runs the app; None when the app runs elsewhere
        # (e.g. under a test client), where outages and dropped connections cannot be emulated.
        self.server: ServerControl | None = None
        self._reset_state = reset_state
        self._complete_fault = complete_fault

    def admin_routes(self) -> list[BaseRoute]:
        return [
            Route(f"{ADMIN_PREFIX}/calls", self._calls, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/reset", self._reset, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/faults", self._list_faults, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/faults", self._add_fault, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/faults", self._clear_faults, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/faults/{{fault_id}}", self._remove_fault, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/outage", self._outage, methods=["POST"]),
        ]

    async def _calls(self, request: Request) -> Response:
        return JSONResponse(self.counters.snapshot())

    async def _reset(self, request: Request) -> Response:
        try:
            what = await parse_admin_body(request, ResetRequest, empty_ok=True)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        if what.state:
            self._reset_state()
        if what.counters:
            self.counters.clear()
        if what.faults:
            self.faults.clear()
        return JSONResponse(what.model_dump())

    async def _list_faults(self, request: Request) -> Response:
        return JSONResponse([fault.model_dump() for fault in self.faults.active()])

    async def _add_fault(self, request: Request) -> Response:
        try:
            rule = await parse_admin_body(request, FaultRule)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        try:
            rule = self._complete_fault(rule)
        except ValueError as exc:
            return admin_error(str(exc))
        if rule.drop_connection and self.server is None:
            return admin_error(
                "dropped connections need the emulator server (RunningEmulators or the CLI)", 501
            )
        return JSONResponse(self.faults.add(rule).model_dump(), status_code=201)

    async def _clear_faults(self, request: Request) -> Response:
        cleared = len(self.faults.active())
        self.faults.clear()
        return JSONResponse({"cleared": cleared})

    async def _remove_fault(self, request: Request) -> Response:
        if self.faults.remove(request.path_params["fault_id"]):
            return Response(status_code=204)
        return admin_error("no such fault", 404)

    async def _outage(self, request: Request) -> Response:
        try:
            outage = await parse_admin_body(request, OutageRequest)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        if self.server is None:
            return admin_error(
                "outages need the emulator server (RunningEmulators or the CLI)", 501
            )
        # Go dark before answering: once the caller has the answer, no connection is
        # left for any client to reuse and no new one is accepted. Only the caller's
        # own connection lives until its answer is sent.
        client = request.scope.get("client")
        await self.server.stop_listening(outage.seconds, (client[0], client[1]) if client else None)
        return JSONResponse(
            outage.model_dump(),
            status_code=202,
            background=BackgroundTask(self.server.drop_connections),
        )


def emulator_core(app: Starlette) -> EmulatorCore:
    core = app.state.emulator
    if not isinstance(core, EmulatorCore):
        raise TypeError("not an emulator app")
    return core
