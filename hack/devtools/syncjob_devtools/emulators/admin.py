"""Typed client for an emulator's ``/_emulator`` admin API (tests, demos, benchmarks)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import boto3
import botocore.config
import httpx
from pydantic import BaseModel

from syncjob_devtools.emulators.base import ADMIN_PREFIX
from syncjob_devtools.emulators.faults import ActiveFault, FaultRule
from syncjob_devtools.emulators.sigv4 import CredentialSummary, KnownCredentials

if TYPE_CHECKING:  # type stubs only: not installed in the image
    from mypy_boto3_iottwinmaker import IoTTwinMakerClient


class CallCounts(BaseModel):
    operations: dict[str, int]
    objects: dict[str, dict[str, int]]
    # TwinMaker: authenticated calls per access key, and the keys that signed each object's.
    signers: dict[str, dict[str, int]]
    object_signers: dict[str, dict[str, int]]
    # Failures faults injected, by operation and kind ("500 before", "connection reset after
    # commit", "response delay", ...).
    injected: dict[str, dict[str, int]]
    # TwinMaker with throttling on: calls refused for their rate, by operation.
    throttled: dict[str, int]


class EmulatorAdminError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class EmulatorAdmin:
    """``EmulatorAdmin(emu.twinmaker_url).inject_fault("GetSyncJob", status=429, next_n=2)``."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + ADMIN_PREFIX, timeout=timeout)

    def __enter__(self) -> EmulatorAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = self._http.request(method, path, json=body, headers=headers)
        if response.is_error:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise EmulatorAdminError(response.status_code, detail)
        return response.json() if response.content else None

    def calls(self) -> CallCounts:
        return CallCounts.model_validate(self._call("GET", "/calls"))

    def count(self, operation: str, obj: str | None = None) -> int:
        """Calls of ``operation`` so far, or of it on one object (see docs for object keys)."""
        calls = self.calls()
        if obj is None:
            return calls.operations.get(operation, 0)
        return calls.objects.get(obj, {}).get(operation, 0)

    def reset(self, *, state: bool = True, counters: bool = True, faults: bool = True) -> None:
        self._call("POST", "/reset", {"state": state, "counters": counters, "faults": faults})

    def inject_fault(
        self,
        operation: str = "*",
        *,
        latency_ms: int = 0,
        response_delay_ms: int = 0,
        error_rate: float | None = None,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        drop_connection: bool = False,
        after_commit: bool = False,
        next_n: int | None = None,
    ) -> ActiveFault:
        rule = FaultRule(
            operation=operation,
            latency_ms=latency_ms,
            response_delay_ms=response_delay_ms,
            error_rate=error_rate,
            status=status,
            code=code,
            message=message,
            drop_connection=drop_connection,
            after_commit=after_commit,
            next_n=next_n,
        )
        created = self._call("POST", "/faults", rule.model_dump(exclude_none=True))
        return ActiveFault.model_validate(created)

    def faults(self) -> list[ActiveFault]:
        return [ActiveFault.model_validate(f) for f in self._call("GET", "/faults")]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> int:
        cleared: int = self._call("DELETE", "/faults")["cleared"]
        return cleared

    def outage(self, seconds: float) -> None:
        """Refuse connections for ``seconds``; once this returns, new connections fail."""
        # The server closes this connection after answering: do not keep it for reuse.
        self._call("POST", "/outage", {"seconds": seconds}, headers={"Connection": "close"})

    def sync_job_outcome(
        self,
        workspace_id: str,
        sync_source: str = "SITEWISE",
        *,
        state: Literal["ERROR", "ACTIVE"] = "ERROR",
        code: str | None = None,
        message: str | None = None,
    ) -> Literal["existing", "next-create"]:
        """TwinMaker only: make a job end in ``state`` (now, or the next one created)."""
        body = {"workspaceId": workspace_id, "syncSource": sync_source, "state": state}
        body |= {k: v for k, v in (("code", code), ("message", message)) if v is not None}
        applied: Literal["existing", "next-create"] = self._call("POST", "/sync-job-outcome", body)[
            "applied"
        ]
        return applied

    def sync_resource_errors(
        self,
        workspace_id: str,
        count: int,
        *,
        sync_source: str = "SITEWISE",
        code: str = "SYNC_PROCESSING_ERROR",
        message: str = "Emulated resource error",
    ) -> None:
        """TwinMaker only: the first `count` resources of an ACTIVE job report `code` in
        ListSyncResources (0 clears)."""
        body = {"workspaceId": workspace_id, "syncSource": sync_source, "count": count}
        self._call("POST", "/sync-resource-errors", body | {"code": code, "message": message})

    def run_outcome(
        self, sync_job_id: str, status: str = "failed", error: str | None = None
    ) -> None:
        """Truto only: runs of the job created from now on end `status` (completed clears)."""
        body = {"sync_job_id": sync_job_id, "status": status, "error": error}
        self._call("POST", "/run-outcome", {k: v for k, v in body.items() if v is not None})

    def credentials(self) -> list[CredentialSummary]:
        """TwinMaker only: the access keys it accepts (static, or sessions its STS issued)."""
        return [CredentialSummary.model_validate(c) for c in self._call("GET", "/credentials")]

    def add_credentials(
        self,
        access_key_id: str,
        secret_access_key: str,
        *,
        session_token: str | None = None,
        expires_at: float | None = None,
    ) -> None:
        """TwinMaker only: accept requests signed with this key (a session's, with its token
        and expiry, epoch seconds)."""
        known = KnownCredentials(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expires_at=expires_at,
        )
        self._call("POST", "/credentials", known.model_dump(exclude_none=True))

    def remove_credentials(self, access_key_id: str) -> None:
        """TwinMaker only: revoke a key; requests signed with it are refused from now on."""
        self._call("DELETE", f"/credentials/{quote(access_key_id, safe='')}")

    def add_token(self, token: str) -> None:
        """Truto only: accept this API token from now on."""
        self._call("POST", "/tokens", {"token": token})

    def revoke_token(self, token: str) -> None:
        """Truto only: requests bearing this token get 401 from now on."""
        self._call("DELETE", f"/tokens/{quote(token, safe='')}")

    def remove_sync_job(self, workspace_id: str, sync_source: str = "SITEWISE") -> None:
        """TwinMaker only: drop a job at once, bypassing DeleteSyncJob (out-of-band deletion)."""
        self._call("DELETE", f"/sync-jobs/{workspace_id}/{sync_source}")


def aws_client(
    service: Literal["sts", "resourcegroupstaggingapi"],
    endpoint_url: str,
    region: str = "us-east-1",
) -> Any:
    """A boto3 client of another AWS API the TwinMaker emulator serves on its endpoint (``sts``,
    ``resourcegroupstaggingapi``), signed with one of its default key pairs."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )


def twinmaker_client(
    endpoint_url: str,
    region: str = "us-east-1",
    *,
    read_timeout: float = 60.0,
    access_key: tuple[str, str] = ("emulator", "emulator"),
    session_token: str | None = None,
) -> IoTTwinMakerClient:
    """A real boto3 TwinMaker client pointed at the emulator, for tests, demo and benchmarks.

    inject_host_prefix=False: the model's "api." host prefix would send boto3 to
    "api.127.0.0.1", which does not resolve. total_max_attempts=1: botocore's max_attempts
    counts retries, so it would still retry an injected 429/500 once and hide it.
    read_timeout defaults to botocore's own. access_key: (id, secret), one of the emulator's
    default pairs unless given; session_token with session credentials (STS's).
    """
    return boto3.client(
        "iottwinmaker",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key[0],
        aws_secret_access_key=access_key[1],
        aws_session_token=session_token,
        config=botocore.config.Config(
            retries={"total_max_attempts": 1}, inject_host_prefix=False, read_timeout=read_timeout
        ),
    )
