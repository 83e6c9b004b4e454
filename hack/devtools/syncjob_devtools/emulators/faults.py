"""Fault injection and call counting shared by both emulators.

Faults are keyed by operation name (or ``"*"`` for every operation) and are
applied after authentication, before the operation runs, so an injected error
looks to the client exactly like one the real service returns.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

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
    next_n: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _has_an_effect(self) -> FaultRule:
        if self.latency_ms == 0 and self.response_delay_ms == 0 and not self.has_error:
            raise ValueError(
                "a fault needs latency_ms or response_delay_ms > 0, or an error (status, code)"
            )
        if self.error_rate is not None and not self.has_error:
            raise ValueError("error_rate needs an error (status and/or code)")
        return self

    @property
    def has_error(self) -> bool:
        return self.status is not None or self.code is not None


class ActiveFault(FaultRule):
    """A rule as stored and listed: with its id and the calls it has left."""

    id: str
    remaining: int | None = None


@dataclass(frozen=True)
class InjectedError:
    """An error a fault rule decided to return; the emulator renders it."""

    status: int | None
    code: str | None
    message: str | None


@dataclass(frozen=True)
class Injection:
    """What the matching rules decided for one call."""

    error: InjectedError | None = None
    response_delay_ms: int = 0

    async def hold_response(self) -> None:
        if self.response_delay_ms:
            await asyncio.sleep(self.response_delay_ms / 1000)


NO_INJECTION = Injection()


class FaultBook:
    """Active fault rules, consulted once per API call."""

    def __init__(self) -> None:
        self._rules: dict[str, ActiveFault] = {}
        self._random = random.Random()

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
        """Sleep for the matching latency; return the first error that fires and how long
        to hold the response once the operation has run."""
        if not self._rules:  # the benchmark's hot path
            return NO_INJECTION
        latency_ms = response_delay_ms = 0
        error: InjectedError | None = None
        for rule in list(self._rules.values()):
            if rule.operation not in (operation, ANY_OPERATION):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._rules[rule.id]
            latency_ms += rule.latency_ms
            response_delay_ms += rule.response_delay_ms
            rate = 1.0 if rule.error_rate is None else rule.error_rate
            if error is None and rule.has_error and self._random.random() < rate:
                error = InjectedError(rule.status, rule.code, rule.message)
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        return Injection(error, response_delay_ms)


class CallCounters:
    """Calls per operation and per object, for ``GET /_emulator/calls``."""

    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.objects: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def record(self, operation: str, obj: str | None = None) -> None:
        self.operations[operation] += 1
        if obj is not None:
            self.objects[obj][operation] += 1

    def record_object(self, operation: str, obj: str) -> None:
        """Attribute an already counted call to an object known only afterwards."""
        self.objects[obj][operation] += 1

    def clear(self) -> None:
        self.operations.clear()
        self.objects.clear()

    def snapshot(self) -> dict[str, dict[str, int] | dict[str, dict[str, int]]]:
        return {
            "operations": dict(self.operations),
            "objects": {obj: dict(ops) for obj, ops in self.objects.items()},
        }
