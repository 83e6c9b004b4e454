"""`syncjob-operator run`: wires the providers, the reconciler, the metrics server and kopf's
edge together, then runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from syncjob_operator.drift import DriftPass
from syncjob_operator.kopf_edge import run as kopf_run
from syncjob_operator.kopf_edge.handlers import KopfHandlers
from syncjob_operator.kube import (
    UNREACHABLE,
    KubeCalls,
    KubeCrashGuard,
    KubeSecrets,
    KubeStatusWriter,
    exact_namespaces,
    list_syncjobs,
    secret_hold,
    wait_until_served,
)
from syncjob_operator.metrics import REGISTRY
from syncjob_operator.model import ProviderName
from syncjob_operator.providers.base import Provider
from syncjob_operator.providers.truto import DEFAULT_BASE_URL, TrutoProvider
from syncjob_operator.providers.twinmaker import TwinMakerProvider
from syncjob_operator.reconcile import (
    BLOCKED_DELETION_RECHECK_SECONDS,
    MAX_CONCURRENT_RECONCILES,
    Deps,
    Reconciler,
    Timing,
)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _labels(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected key=value[,key=value], got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


SENIORITY = "seniority"


def _priority(text: str) -> int:
    """An integer, or `seniority`: minus this process's start time in milliseconds, so that the
    longest-running peer outranks every later one. Replicas of one Deployment then never tie
    (kopf pauses all peers of equal priority): the first is active, later ones stand by and
    take over in the order they started."""
    if text == SENIORITY:
        return -(time.time_ns() // 1_000_000)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or {SENIORITY!r}, got {text!r}"
        ) from None


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    timing = Timing()

    def seconds(flag: str, default: float, text: str) -> None:
        """A duration flag whose default comes from SYNCJOB_<FLAG> (e.g. SYNCJOB_POLL_SECONDS),
        else from `Timing`."""
        variable = "SYNCJOB_" + flag.removeprefix("--").replace("-", "_").upper()
        parser.add_argument(flag, type=float, default=float(env(variable, default)), help=text)

    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        dest="namespaces",
        help="watch only this namespace (repeatable; globs allowed); default: all namespaces",
    )
    parser.add_argument(
        "--selector",
        type=_labels,
        default=_labels(env("SYNCJOB_SELECTOR", "")),
        help="handle only SyncJobs with these labels (key=value,...), to shard across releases",
    )
    parser.add_argument(
        "--peering",
        default=env("SYNCJOB_PEERING") or None,
        help="kopf peering name for HA with priorities; default: standalone",
    )
    parser.add_argument(
        "--priority",
        type=_priority,
        default=env("SYNCJOB_PRIORITY", "0"),
        help=f"peering priority: an integer, or {SENIORITY!r} (the oldest peer works)",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(env("SYNCJOB_PEERING_LIFETIME", "60")),
        help="seconds a peer counts as alive after its last keep-alive: how long a standby"
        " waits for a peer that died without saying goodbye",
    )
    parser.add_argument(
        "--log-format", choices=["plain", "json"], default=env("SYNCJOB_LOG_FORMAT", "plain")
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--metrics-address",
        default=env("SYNCJOB_METRICS_ADDRESS", "0.0.0.0:8080"),
        help="serves /metrics and /readyz",
    )
    parser.add_argument(
        "--liveness",
        default=env("SYNCJOB_LIVENESS", "http://0.0.0.0:8081/healthz"),
        help="kopf's liveness endpoint",
    )
    seconds(
        "--resync-seconds",
        timing.drift_seconds,
        "the drift pass's period: one look at every scope per period",
    )
    seconds(
        "--poll-seconds",
        timing.poll_seconds,
        "how often a settling remote job (CREATING, DELETING) is read",
    )
    seconds(
        "--retry-backoff-cap-seconds",
        timing.backoff_cap_seconds,
        "longest wait before retrying a transient error (5xx, timeouts); the wait doubles per"
        " failed attempt from 1 s. A 429 still waits as long as the provider asks",
    )
    seconds(
        "--terminal-recheck-seconds",
        timing.terminal_recheck_seconds,
        "first re-check of a terminal error; doubles per unchanged check, up to an hour. A"
        " deletion a terminal error blocks is tried again every"
        f" {BLOCKED_DELETION_RECHECK_SECONDS:g} s, or this if shorter",
    )
    parser.add_argument(
        "--sync-progress-pages",
        type=int,
        default=int(env("SYNCJOB_SYNC_PROGRESS_PAGES", "1")),
        help="ListSyncResources pages (200 resources each) read per look at an ACTIVE TwinMaker"
        " job, for status.syncProgress; 0 turns it off",
    )
    seconds(
        "--sync-progress-seconds",
        timing.progress_seconds,
        "how often the drift pass reads each ACTIVE TwinMaker job's resource progress",
    )
    parser.add_argument(
        "--max-concurrent-reconciles",
        type=_at_least_one,
        default=int(env("SYNCJOB_MAX_CONCURRENT_RECONCILES", str(MAX_CONCURRENT_RECONCILES))),
        help="SyncJobs reconciled against their provider at once; the others wait their turn",
    )
    parser.add_argument(
        "--aws-workers",
        type=_at_least_one,
        default=int(env("SYNCJOB_AWS_WORKERS", "8")),
        help="threads for blocking boto3 calls",
    )
    parser.add_argument(
        "--kube-workers",
        type=_at_least_one,
        default=int(env("SYNCJOB_KUBE_WORKERS", "16")),
        help="threads for the operator's own blocking Kubernetes calls (Secrets, annotations)",
    )
    parser.add_argument(
        "--twinmaker-endpoint-url",
        default=env("SYNCJOB_TWINMAKER_ENDPOINT_URL") or None,
        help="default TwinMaker endpoint when a SyncJob sets none",
    )
    parser.add_argument("--truto-base-url", default=env("SYNCJOB_TRUTO_BASE_URL", DEFAULT_BASE_URL))


def configure_logging(args: argparse.Namespace) -> None:
    kopf_run.configure_logging(verbose=args.verbose, json_format=args.log_format == "json")


def run(args: argparse.Namespace) -> int:
    configure_logging(args)
    asyncio.run(_run(args))
    return 0


@contextlib.contextmanager
def _kube_api(workers: int) -> Iterator[k8s_client.ApiClient]:
    configuration = k8s_client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    # One pooled connection per worker thread: no call waits for a connection.
    configuration.connection_pool_maxsize = workers
    with k8s_client.ApiClient(configuration) as api:
        api.user_agent = "syncjob-operator"  # names the operator in managedFields
        yield api


@contextlib.asynccontextmanager
async def _metrics_server(address: str, ready: asyncio.Event) -> AsyncIterator[None]:
    """/metrics and /readyz on aiohttp (already kopf's HTTP stack), in kopf's own loop."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def readyz(_: web.Request) -> web.Response:
        # kopf's ready flag: logged in and startup handlers done (watches start right after).
        if ready.is_set():
            return web.Response(text="ok")
        return web.Response(text="starting", status=503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = address.rpartition(":")
    await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def _run(args: argparse.Namespace) -> None:
    timing = Timing(
        poll_seconds=args.poll_seconds,
        drift_seconds=args.resync_seconds,
        backoff_cap_seconds=args.retry_backoff_cap_seconds,
        terminal_recheck_seconds=args.terminal_recheck_seconds,
        progress_seconds=args.sync_progress_seconds,
    )
    ready, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with (
        ThreadPoolExecutor(max_workers=args.aws_workers, thread_name_prefix="boto3") as executor,
        ThreadPoolExecutor(max_workers=args.kube_workers, thread_name_prefix="kube") as kube_pool,
        _kube_api(args.kube_workers) as api,
    ):
        kube = KubeCalls(api, kube_pool)
        secrets = KubeSecrets(kube, hold=secret_hold(args.selector))
        deps = Deps(
            providers={
                "AWSIoTTwinMaker": TwinMakerProvider(
                    secrets,
                    executor,
                    default_endpoint_url=args.twinmaker_endpoint_url,
                    progress_pages=args.sync_progress_pages,
                ),
                "Truto": TrutoProvider(secrets, default_base_url=args.truto_base_url),
            },
            guard=KubeCrashGuard(kube),
            secrets=secrets,
            timing=timing,
            reconciles=asyncio.Semaphore(args.max_concurrent_reconciles),
        )
        reconciler = Reconciler(deps)
        handlers = KopfHandlers(reconciler, KubeStatusWriter(kube))
        drift = DriftPass(
            period=timing.drift_seconds,
            members=reconciler.due_members,
            scope_of=lambda job: deps.providers[job.spec.provider].scope(job),
            check=handlers.drift_check,
            ends_pass=lambda error: error.code == UNREACHABLE,
        )
        watched = kopf_run.watched(args.namespaces)
        async with _metrics_server(args.metrics_address, ready), _connected(deps.providers):
            await wait_until_served(kube, stop)
            async for page in list_syncjobs(kube, args.namespaces, args.selector, watched=watched):
                handlers.prefill(page)
            # What start-up built (the modules and their tables, the clients, the prefilled
            # index) lives as long as the process: kept out of the collector's full passes,
            # which otherwise walk all of it again every time, and more often the more
            # SyncJobs there are.
            gc.freeze()
            await kopf_run.serve(
                handlers,
                drift,
                namespaces=args.namespaces,
                exact_namespaces=exact_namespaces(args.namespaces),
                selector=args.selector,
                peering=args.peering,
                priority=args.priority,
                peering_lifetime=args.peering_lifetime,
                liveness=args.liveness,
                ready=ready,
                stop=stop,
            )


@contextlib.asynccontextmanager
async def _connected(providers: Mapping[ProviderName, Provider]) -> AsyncIterator[None]:
    """Every provider connected for the operator's life and closed after it, whatever ends it."""
    try:
        for provider in providers.values():
            await provider.connect()
        yield
    finally:
        for provider in providers.values():
            await provider.aclose()
