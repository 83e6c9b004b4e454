"""Fault injection and call counting shared by both emulators.

Faults are keyed by operation name (or ``"*"`` for every operation) and are
applied after authentication. By default a fault fails the call before the
operation runs, so an injected error looks to the client exactly like one the
real service returns. With ``after_commit`` the operation runs first and the
client still sees the failure: the write took effect although the call failed,
as real providers do when a response is lost.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from pydantic import BaseModel, ConfigDict, Field, model_validator

ANY_OPERATION = "*"


class FaultRule(BaseModel):
    """Body of ``POST /_emulator/faults``.

    * ``latency_ms`` is added to every matching call while the rule is active.
    * ``response_delay_ms`` holds the response after the operation has run: the
      server acted, but a client that gives up or dies meanwhile never learns of
      it (the lost-response failure that crash-safety tests need).
    * The error part (``status`` and/or ``code``, optional ``message``) fails a
      call with probability ``error_rate``; the rate defaults to 1.0 when an
      error is given, so ``{"operation": "GetSyncJob", "status": 429}`` throttles
      every GetSyncJob. The emulator fills whichever of status/code is missing
      from its own service (model error codes for TwinMaker, HTTP phrases for
      Truto).
    * ``drop_connection`` fails a call with a reset connection and no response
      at all, instead of an error response.
    * ``after_commit`` lets the operation run and take effect, then fails the call
      with the error or the dropped connection (after ``response_delay_ms``).
    * ``error_rate`` is the probability that a matching call gets the rule's
      failure: its error or dropped connection, and its response delay. It
      defaults to 1.0.
    * ``next_n`` limits the rule to the next N matching calls; it then removes
      itself. Without it the rule stays until ``DELETE /_emulator/faults``.
    """

    model_config = ConfigDict(extra="forbid")

    operation: str = Field(default=ANY_OPERATION, min_length=1)
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    response_delay_ms: int = Field(default=0, ge=0, le=600_000)
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    status: int | None = Field(default=None, ge=400, le=599)
    code: str | None = Field(default=None, min_length=1)
    message: str | None = None
    drop_connection: bool = False
    after_commit: bool = False
    next_n: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _has_an_effect(self) -> FaultRule:
        if self.latency_ms == 0 and not self.fails:
            raise ValueError(
                "a fault needs latency_ms or response_delay_ms > 0, an error (status, code)"
                " or drop_connection"
            )
        if self.drop_connection and self.has_error:
            raise ValueError("a dropped connection has no status or code")
        if self.after_commit and not (self.has_error or self.drop_connection):
            raise ValueError("after_commit needs an error (status, code) or drop_connection")
        if self.error_rate is not None and not self.fails:
            raise ValueError("error_rate needs an error, drop_connection or response_delay_ms")
        return self

    @property
    def has_error(self) -> bool:
        return self.status is not None or self.code is not None

    @property
    def fails(self) -> bool:
        """Whether the rule does more than add latency: what ``error_rate`` draws for."""
        return self.has_error or self.drop_connection or self.response_delay_ms > 0


class ActiveFault(FaultRule):
    """A rule as stored and listed: with its id and the calls it has left."""

    id: str
    remaining: int | None = None


class DropConnection(Exception):
    """Raised to answer a call with a reset connection and no response (handled in base.py)."""


@dataclass(frozen=True)
class InjectedError:
    """An error a fault rule decided to return (the emulator renders it), or a dropped
    connection."""

    status: int | None
    code: str | None
    message: str | None
    drop_connection: bool = False

    def raise_as(self, error: Callable[[InjectedError], Exception]) -> NoReturn:
        if self.drop_connection:
            raise DropConnection
        raise error(self)


@dataclass(frozen=True)
class Injection:
    """What the matching rules decided for one call: a failure before the operation runs, a
    response delay and a failure once it has run."""

    before_commit: InjectedError | None = None
    after_commit: InjectedError | None = None
    response_delay_ms: int = 0

    def kinds(self) -> list[str]:
        """What this injection does to its call, as ``GET /_emulator/calls`` counts it."""
        kinds = []
        for stage, failure in (("before", self.before_commit), ("after commit", self.after_commit)):
            if failure is not None:
                what = "connection reset" if failure.drop_connection else str(failure.status)
                kinds.append(f"{what} {stage}")
        if self.response_delay_ms:
            kinds.append("response delay")
        return kinds

    def fail_before(self, error: Callable[[InjectedError], Exception]) -> None:
        """Raise the failure due before the operation, rendered by ``error``."""
        if self.before_commit is not None:
            self.before_commit.raise_as(error)

    async def fail_after(self, error: Callable[[InjectedError], Exception]) -> None:
        """Once the operation has taken effect: hold the response, then raise the failure due
        after it."""
        if self.response_delay_ms:
            await asyncio.sleep(self.response_delay_ms / 1000)
        if self.after_commit is not None:
            self.after_commit.raise_as(error)


NO_INJECTION = Injection()


class FaultBook:
    """Active fault rules, consulted once per API call; the failures they inject are counted
    in ``counters``."""

    def __init__(self, counters: CallCounters) -> None:
        self._rules: dict[str, ActiveFault] = {}
        self._random = random.Random()
        self._counters = counters

    def add(self, rule: FaultRule) -> ActiveFault:
        active = ActiveFault(**rule.model_dump(), id=uuid.uuid4().hex[:12], remaining=rule.next_n)
        self._rules[active.id] = active
        return active

    def remove(self, fault_id: str) -> bool:
        return self._rules.pop(fault_id, None) is not None

    def clear(self) -> None:
        self._rules.clear()

    def active(self) -> list[ActiveFault]:
        return list(self._rules.values())

    async def inject(self, operation: str) -> Injection:
        """Sleep for the matching latency; return the first failure that fires before and
        after the operation, and how long to hold the response once the operation has run."""
        if not self._rules:  # the benchmark's hot path
            return NO_INJECTION
        latency_ms = response_delay_ms = 0
        failures: dict[bool, InjectedError] = {}  # by after_commit
        for rule in list(self._rules.values()):
            if rule.operation not in (operation, ANY_OPERATION):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._rules[rule.id]
            latency_ms += rule.latency_ms
            rate = 1.0 if rule.error_rate is None else rule.error_rate
            if not rule.fails or self._random.random() >= rate:
                continue
            response_delay_ms += rule.response_delay_ms
            if rule.has_error or rule.drop_connection:
                failures.setdefault(
                    rule.after_commit,
                    InjectedError(rule.status, rule.code, rule.message, rule.drop_connection),
                )
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        injection = Injection(failures.get(False), failures.get(True), response_delay_ms)
        for kind in injection.kinds():
            self._counters.record_injected(operation, kind)
        return injection


class CallCounters:
    """Calls per operation and per object, for ``GET /_emulator/calls``; for signed APIs, the
    authenticated calls per access key and the keys that signed each object's calls."""

    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.objects: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.signers: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.object_signers: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.injected: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.throttled: Counter[str] = Counter()

    def record(self, operation: str, obj: str | None = None) -> None:
        self.operations[operation] += 1
        if obj is not None:
            self.objects[obj][operation] += 1

    def record_object(self, operation: str, obj: str) -> None:
        """Attribute an already counted call to an object known only afterwards."""
        self.objects[obj][operation] += 1

    def record_signer(self, access_key_id: str, operation: str, obj: str | None = None) -> None:
        self.signers[access_key_id][operation] += 1
        if obj is not None:
            self.object_signers[obj][access_key_id] += 1

    def record_injected(self, operation: str, kind: str) -> None:
        self.injected[operation][kind] += 1

    def record_throttled(self, operation: str) -> None:
        self.throttled[operation] += 1

    def clear(self) -> None:
        for tally in (
            self.operations,
            self.objects,
            self.signers,
            self.object_signers,
            self.injected,
            self.throttled,
        ):
            tally.clear()

    def snapshot(self) -> dict[str, dict[str, int] | dict[str, dict[str, int]]]:
        def nested(tally: Mapping[str, Counter[str]]) -> dict[str, dict[str, int]]:
            return {key: dict(counts) for key, counts in tally.items()}

        return {
            "operations": dict(self.operations),
            "objects": nested(self.objects),
            "signers": nested(self.signers),
            "object_signers": nested(self.object_signers),
            "injected": nested(self.injected),
            "throttled": dict(self.throttled),
        }
