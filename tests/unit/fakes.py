"""Fakes for the unit tier: a provider, an identity writer and a Secret keeper; claims over the
operator's real index.

The provider and the writer append to one shared journal, so a test can assert the order of
remote calls and identity writes (the crash guard is all about that order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from syncjob_operator.converge import Context
from syncjob_operator.index import ObjectIndex
from syncjob_operator.kopf_edge.handlers import KopfHandlers, index_entries
from syncjob_operator.kube import KubeError
from syncjob_operator.model import PendingCreate, ProviderName, RunMark, SyncJob
from syncjob_operator.ownership import Claims
from syncjob_operator.providers.base import NAME_TAKEN, Observation, ProviderError
from syncjob_operator.reconcile import Deps, Reconciler, Timing

FINGERPRINT = "content-1"
NEW_ID = "id-new"
CREATED = Observation(exists=True, remote_id=NEW_ID, state="CREATING", settled=False)

WRITES = ("mark", "unmark", "identity:")


@dataclass
class FakeProvider:
    """Answers observe() from a queue (an unexpected call fails the test) and records calls."""

    observations: list[Observation] = field(default_factory=list)
    leftovers: list[Observation] = field(default_factory=list)
    created: Observation = CREATED
    name_taken: bool = False  # create() answers NAME_TAKEN, as a named provider does
    fail: dict[str, ProviderError] = field(default_factory=dict)
    journal: list[str] = field(default_factory=list)
    marks_owner: bool = False
    found_by_spec: bool = False
    name: ProviderName = "AWSIoTTwinMaker"
    created_for: list[SyncJob] = field(default_factory=list)
    progress_asked: list[bool] = field(default_factory=list)  # `progress` of each observe

    @property
    def calls(self) -> list[str]:
        """The remote calls only, without the identity writes."""
        return [entry for entry in self.journal if not entry.startswith(WRITES)]

    def _enter(self, call: str) -> None:
        self.journal.append(call)
        if call in self.fail:
            raise self.fail[call]

    async def observe(
        self,
        job: SyncJob,
        *,
        max_age: float | None = None,
        content: bool = True,
        progress: bool = False,
    ) -> Observation:
        self.progress_asked.append(progress)
        call = "observe" if max_age is None else "observe-list"
        self._enter(call if content else f"{call}-state")
        assert self.observations, f"unexpected observe of {job.remote_id}"
        return self.observations.pop(0)

    async def create(self, job: SyncJob) -> Observation:
        assert job.pending_create is not None, "create must see the persisted guard"
        assert self.journal[-1] == "mark", "the marker must be written just before the create"
        self._enter("create")
        self.created_for.append(job)
        if self.name_taken:
            raise ProviderError(NAME_TAKEN, "the name is taken", retryable=False)
        return self.created

    async def update(self, job: SyncJob, observed: Observation) -> Observation:
        self._enter("update")
        return dataclasses.replace(observed, up_to_date=True, drift=())

    async def delete(self, job: SyncJob, observed: Observation) -> None:
        self._enter(f"delete:{observed.remote_id}")

    async def release(self, job: SyncJob, observed: Observation) -> None:
        self._enter(f"release:{observed.remote_id}")

    async def scope(self, job: SyncJob) -> Hashable:
        return ("fake", "scope")

    async def connect(self) -> None:
        self.journal.append("connect")

    async def aclose(self) -> None:
        self.journal.append("close")

    def fingerprint(self, job: SyncJob) -> str:
        return FINGERPRINT

    async def find_created(self, job: SyncJob) -> list[Observation]:
        self._enter("find_created")
        return list(self.leftovers)


@dataclass
class RecordingWriter:
    """The IdentityWriter: records what reached the API server, in the shared journal."""

    journal: list[str]
    pending: list[PendingCreate] = field(default_factory=list)

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        self.journal.append("mark")
        self.pending.append(pending)

    async def record_identity(self, job: SyncJob, remote_id: str) -> None:
        self.journal.append(f"identity:{remote_id}")

    async def drop_pending_create(self, job: SyncJob) -> None:
        self.journal.append("unmark")

    async def mark_run(self, job: SyncJob, mark: RunMark) -> None:
        self.journal.append(f"run-mark:{mark.request_id}")

    async def record_run(self, job: SyncJob, mark: RunMark) -> None:
        self.journal.append(f"run:{mark.request_id}={mark.run_id}")


def entries_of(one: Mapping[str, Any]) -> dict[Any, Any]:
    """What the operator's watch-event handler puts in its index for this SyncJob."""
    return index_entries(kopf.Body(cast(kopf.RawBody, one)))


def indexed(*bodies: Mapping[str, Any]) -> ObjectIndex:
    """The operator's index of these SyncJobs."""
    index = ObjectIndex()
    for one in bodies:
        index.replace(one["metadata"]["uid"], entries_of(one))
    return index


def claims_of(*bodies: Mapping[str, Any]) -> Claims:
    """Claims as the operator sees them when these SyncJobs exist."""
    claims = Claims()
    claims.attach(indexed(*bodies).get)
    return claims


def context(
    provider: FakeProvider,
    claims: Claims | None = None,
    *,
    answered: dict[str, str] | None = None,
) -> tuple[Context, RecordingWriter]:
    writer = RecordingWriter(provider.journal)
    ctx = Context(
        provider=provider,
        writer=writer,
        claims=Claims() if claims is None else claims,
        answered={} if answered is None else answered,
    )
    return ctx, writer


@dataclass
class RecordingStatusWriter:
    """The drift pass's writer: the status patches and the annotations it wrote, by object
    name."""

    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    annotated: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)

    async def write(self, job: SyncJob, status: dict[str, Any]) -> None:
        self.writes.append((job.name, status))

    async def annotate(self, job: SyncJob, annotations: Mapping[str, str | None]) -> None:
        self.annotated.append((job.name, dict(annotations)))


@dataclass
class FakeSecrets:
    """A SecretKeeper: Secrets by (namespace, name) as (data, resourceVersion)."""

    secrets: dict[tuple[str, str], tuple[dict[str, str], str]] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    hold: str = "syncjob.dev/secret-in-use"  # the finalizer and label of this operator (shard)

    async def read(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        found = self.secrets.get((namespace, name))
        if found is None:
            raise KubeError(
                "SecretNotFound", f"Secret {namespace}/{name} does not exist", retryable=False
            )
        return found

    async def protect(self, namespace: str, name: str) -> None:
        self.protected.append(f"{namespace}/{name}")

    async def release(self, namespace: str, name: str) -> None:
        self.released.append(f"{namespace}/{name}")


def handlers_for(
    provider: FakeProvider,
    secrets: FakeSecrets | None = None,
    timing: Timing | None = None,
) -> KopfHandlers:
    """The operator's kopf callbacks over `provider` (as TwinMaker), recording every write."""
    deps = Deps(
        providers={"AWSIoTTwinMaker": provider},
        guard=RecordingWriter(provider.journal),
        secrets=FakeSecrets() if secrets is None else secrets,
        timing=Timing() if timing is None else timing,
    )
    return KopfHandlers(Reconciler(deps), RecordingStatusWriter())
