"""kopf's logging, login and operator loop, set up for this operator."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kopf
from kopf._cogs.structs.references import NamespaceName, match_namespace

from syncjob_operator.drift import DriftPass
from syncjob_operator.kopf_edge import slimwatch
from syncjob_operator.kopf_edge.handlers import KopfHandlers, register
from syncjob_operator.kopf_edge.settings import configure_settings
from syncjob_operator.kube import GROUP, PLURAL

# At DEBUG these clients log request and response bodies: Secret data (and kubectl's
# last-applied annotation, which carries stringData in clear), tokens, signing details.
# They stay at WARNING at every verbosity: secret values never reach the log.
CLIENT_LOGGERS = ("kubernetes", "botocore", "boto3", "urllib3", "httpx", "httpcore", "aiohttp")


def configure_logging(*, verbose: bool, json_format: bool) -> None:
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if json_format else kopf.LogFormat.FULL,
        # Plain lines carry "[namespace/name]"; JSON lines carry the object under "object".
        log_prefix=not json_format,
        log_refkey="object" if json_format else None,
    )
    for client in CLIENT_LOGGERS:
        logging.getLogger(client).setLevel(logging.WARNING)
    # urllib3 warns of each retry of each request while the API server is away; the error that
    # ends them reaches the operator, which logs it once, classified (kube.unreachable).
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:  # kopf.configure's, which every line reaches
        handler.addFilter(quiet_request_retries)


# kopf logs each attempt of its own API requests (watches, patches, Events) at ERROR with the
# error's whole repr: nine lines per request while the API server is away.
_KOPF_ATTEMPT = re.compile(
    r"(?P<attempt>Request attempt #(?P<number>\d+)/\d+ failed; (?P<then>will retry|escalating):"
    r" .*? -> )(?P<error>\w+)(?P<detail>.*)",
    re.DOTALL,
)
_SHORT_DETAIL = 100  # characters of the error's repr after its class name


def quiet_request_retries(record: logging.LogRecord) -> bool:
    """Keeps kopf's line for the first attempt of a request and for the one it gives up on,
    each ending in the error's class and the start of its repr; drops the retries between."""
    found = _KOPF_ATTEMPT.fullmatch(str(record.msg))
    if found is None:
        return True
    if found["then"] == "will retry" and found["number"] != "1":
        return False
    detail = found["detail"]
    if len(detail) > _SHORT_DETAIL:
        detail = detail[:_SHORT_DETAIL] + "..."
    record.msg, record.args = f"{found['attempt']}{found['error']}{detail}", ()
    return True


def watched(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Whether kopf, given these namespace patterns (none: all), watches a namespace: kopf's
    own matching, so the operator's listing holds exactly the objects kopf reports events for."""
    kept = list(patterns)
    return lambda namespace: (
        not kept or any(match_namespace(NamespaceName(namespace), p) for p in kept)
    )


def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Explicit: kopf would otherwise pick a login by which client libraries are importable.
    # The official client's in-cluster config finds the API server by KUBERNETES_SERVICE_HOST
    # and _PORT, as client-go does; kopf's own service-account login assumes cluster DNS
    # (https://kubernetes.default.svc) and fails in a cluster without it.
    return kopf.login_via_client(**kwargs)


async def serve(
    handlers: KopfHandlers,
    drift: DriftPass,
    *,
    namespaces: Sequence[str],
    exact_namespaces: bool,
    selector: Mapping[str, str],
    peering: str | None,
    priority: int,
    peering_lifetime: int,
    liveness: str | None,
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Runs kopf with `handlers` until `stop`; the drift pass starts with the first watch event
    handled, where kopf's context (Event posting) is current, and ends with kopf."""
    registry = kopf.OperatorRegistry()
    drift_tasks: list[asyncio.Task[None]] = []
    register(registry, handlers, labels=selector)
    slimwatch.install(
        # Every listing kopf makes of SyncJobs, the first one and each after its watch was
        # away, tells which objects are gone without an event (the prefilled index's too).
        listings={(GROUP, PLURAL): handlers.reconciler.forget_unlisted},
        # Every SyncJob's claim, owner name and Secrets, for the ownership rules and the drift
        # pass: filled before kopf starts (KopfHandlers.prefill), kept current from each event
        # before kopf's handlers run (index.py says why not kopf.index).
        events={(GROUP, PLURAL): handlers.on_watch_event},
        first_processed=lambda: drift_tasks.append(asyncio.create_task(drift.run())),
    )

    async def stop_drift(**_: Any) -> None:
        for task in drift_tasks:
            task.cancel()

    async def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        configure_settings(
            settings,
            exact_namespaces=exact_namespaces,
            peering_lifetime=peering_lifetime,
            shard=selector,
            secret_hold=handlers.reconciler.deps.secrets.hold,
        )

    kopf.on.cleanup(registry=registry, id="drift")(stop_drift)
    kopf.on.startup(registry=registry, id="configure")(configure)
    kopf.on.login(registry=registry)(_login)
    await kopf.operator(
        registry=registry,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=peering is None,
        peering_name=peering,
        priority=priority,
        liveness_endpoint=liveness or None,
        ready_flag=ready,
        stop_flag=stop,
    )
