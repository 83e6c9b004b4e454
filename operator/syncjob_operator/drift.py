"""The periodic drift pass: per scope, not per object. No kopf here.

Every period, the SyncJobs held in memory (the index, fed by the watch) are grouped by the
scope one provider list call covers (a TwinMaker workspace, a Truto token and integration).
Each scope is walked by one task: its first SyncJob's read lists the scope, the others are
served from that list, and a SyncJob whose remote job still matches its status costs no
further call and no write. Tasks and remote calls grow with scopes, not objects; there is no
timer per object.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncjob_operator.metrics import DRIFT_PASS_SCOPES, DRIFT_PASS_SECONDS
from syncjob_operator.model import SyncJob
from syncjob_operator.providers.base import CallError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Member:
    """What the drift pass knows of one SyncJob: as of the latest watch event."""

    # SyncJob.essentials of the object as compact JSON: one string per object. Parsed models
    # and the event's dicts held several times as much, in thousands of small blocks per
    # 1,000 objects; the pass parses a member once or twice per period instead.
    body_json: str
    # Until when (epoch seconds) a change handler owns it: for ever while its creation is not
    # handled; while the handler retries it, until the retry is well overdue; 0 otherwise.
    handler_until: float = 0.0
    # The annotation holding the change handler's retry state, while there is one: once the
    # retry is overdue, the drift pass handles the object and removes it.
    stale_annotation: str | None = None

    @classmethod
    def of(
        cls,
        body: Mapping[str, Any],
        *,
        handler_until: float = 0.0,
        stale_annotation: str | None = None,
    ) -> Member:
        """The member of a SyncJob `body` that SyncJob.from_body parses."""
        essentials = json.dumps(SyncJob.essentials(body), separators=(",", ":"))
        return cls(essentials, handler_until, stale_annotation)

    def parse(self) -> tuple[SyncJob, dict[str, Any]]:
        """The SyncJob and its status."""
        body = json.loads(self.body_json)
        return SyncJob.from_body(body), body["status"]

    @property
    def job(self) -> SyncJob:
        return self.parse()[0]


class DriftPass:
    def __init__(
        self,
        *,
        period: float,
        members: Callable[[], Iterable[Member]],
        scope_of: Callable[[SyncJob], Awaitable[Hashable]],
        check: Callable[[Member], Awaitable[None]],
        concurrency: int = 16,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ends_pass: Callable[[CallError], bool] = lambda error: False,
    ) -> None:
        """`ends_pass` tells the errors that no other object of the pass can escape (the API
        server is away): the first one ends the pass, in one log line, not one per object."""
        self._period = period
        self._members = members
        self._scope_of = scope_of
        self._check = check
        self._concurrency = concurrency
        self._sleep = sleep  # a test's clock can stand in for the event loop's
        self._ends_pass = ends_pass

    async def run(self) -> None:
        """Sweeps once per period, forever; start it once the index is complete."""
        while True:
            await self._sleep(self._period)
            started = time.monotonic()
            try:
                scopes = await self.sweep()
            except CallError as error:  # classified: its code and message say enough
                log.warning("drift pass failed: %s; the next one runs in %ss", error, self._period)
                continue
            except Exception:  # a pass that fails must not end drift detection for good
                log.exception("drift pass failed; the next one runs in %ss", self._period)
                continue
            DRIFT_PASS_SECONDS.observe(time.monotonic() - started)
            DRIFT_PASS_SCOPES.set(scopes)
            # A full collection per pass. With 10,000 objects the interpreter starts one only
            # after hundreds of thousands of new long-lived objects, so the cyclic garbage of
            # each pass (exceptions and the frames they hold) would pile up for hours first.
            # It costs about 0.3 s of the event loop per pass at 5,000 objects.
            log.debug("drift pass done; collected %d unreachable objects", gc.collect())

    async def sweep(self) -> int:
        """One pass over every scope; returns how many scopes it walked."""
        groups: defaultdict[Hashable, list[Member]] = defaultdict(list)
        for member in list(self._members()):
            groups[await self._scope(member.job)].append(member)
        scopes = iter(list(groups.values()))
        ended: list[CallError] = []

        async def walker() -> None:
            # A fixed set of walkers takes scopes in turn: tasks, and the memory they hold,
            # stay flat however many scopes there are.
            for members in scopes:
                for member in members:
                    if ended:
                        return
                    await self._check_one(member, ended)

        await asyncio.gather(*(walker() for _ in range(self._concurrency)))
        if ended:
            raise ended[0]
        return len(groups)

    async def _scope(self, job: SyncJob) -> Hashable:
        try:
            return await self._scope_of(job)
        except Exception:  # e.g. its Secret is missing: the job's own reconcile reports that
            return ("unscoped", job.uid)

    async def _check_one(self, member: Member, ended: list[CallError]) -> None:
        # One object's failure must not end the pass for the others; the next pass retries.
        try:
            await self._check(member)
        except CallError as error:
            if self._ends_pass(error):
                ended.append(error)
                return
            job = member.job
            log.warning("drift check of %s/%s failed: %s", job.namespace, job.name, error)
        except Exception:
            job = member.job
            log.exception("drift check of %s/%s failed", job.namespace, job.name)
