"""Composition root: build the daemon's service tree from a config and a reactor.

``build_service`` is the only place that wires adapters (HTTP, store, and later AMI,
FastAGI, Redis) to the core; everything receives the reactor it needs.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.server import Site
from typing_extensions import override

from callnowd.ami.presence import ExtensionPresence
from callnowd.background import run_in_background
from callnowd.calls.intake import Intake
from callnowd.config import Config
from callnowd.http.admin import AdminPages, mount_admin
from callnowd.http.answers import NotReady
from callnowd.http.captcha import CaptchaChallenges
from callnowd.http.csrf import CsrfTokens
from callnowd.http.public import PublicPages, PublicSettings
from callnowd.http.render import Templates
from callnowd.http.site import CallNowSite
from callnowd.limits.destination_policy import DestinationPolicy, policy_from_config
from callnowd.limits.limiter import build_limiter
from callnowd.listening import ListeningService
from callnowd.metrics import Metrics
from callnowd.pbx_services import PbxParts, build_pbx
from callnowd.secrets_file import load_or_create_secret
from callnowd.store.interface import Store
from callnowd.store.open import open_store

log = Logger()


def destination_policy(config: Config) -> DestinationPolicy:
    """The destination policy of ``[destinations]``, home region ``[phone]``'s."""
    d = config.destinations
    return policy_from_config(
        home_region=config.phone.default_region,
        allowed_regions=d.allowed_regions or None,
        refused_types=d.refused_types,
        blocked_prefixes=d.blocked_prefixes,
    )


class StoreService(Service):
    """Closes the store (its connection pool and threads) when the daemon stops."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self.store.close())


class GcTuning(Service):
    """Moves start-up objects out of the garbage collector's way when running.

    Modules, templates and phone-number metadata make some 200k long-lived
    objects; full collections over them took ~40 % of the CPU under load. They
    are frozen once the daemon is built, and young-generation collections run
    less often.
    """

    @override
    def startService(self) -> None:
        super().startService()
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)


class CallNowService(MultiService):
    """The daemon: its children, plus handles the tests and the CLI use."""

    pbx: PbxParts
    pages: PublicPages

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    @override
    def stopService(self) -> Deferred[object]:
        # The flow first: Twisted stops the children in this same call, in reverse
        # order of addition, so the store (added first) closes now, under the calls
        # in flight; told before, the flow ends them quietly and stores no outcome
        # the shutdown itself caused (the next start reconciles them).
        self.pbx.flow.stop()
        stopped: Deferred[object] = super().stopService()  # a DeferredList
        return stopped


def build_service(config: Config, reactor: Any) -> CallNowService:
    """Build the whole daemon; nothing listens until the service starts.

    Blocking work (schema migrations, reading the secret key) happens here, before
    the reactor runs.

    Args:
        config: the validated configuration.
        reactor: the reactor every component uses.

    Returns:
        The root service.
    """
    base_dir = Path.cwd()
    store = open_store(cast(IReactorCore, reactor), config.store.url, base_dir)
    secret = load_or_create_secret(base_dir / config.public.secret_file)
    root = CallNowService(store)
    StoreService(store).setServiceParent(root)
    GcTuning().setServiceParent(root)
    metrics = Metrics()
    parts = build_pbx(config, reactor, store, root, metrics.transition)
    root.pbx = parts
    metrics.watch(lambda: parts.client.connected, lambda: parts.flow.in_flight)
    limiter, limiter_service = build_limiter(
        config.limits, secret, reactor, reactor, registry=metrics.registry
    )
    limiter_service.setServiceParent(root)
    intake = Intake(
        store,
        destination_policy(config),
        ExtensionPresence(parts.client, config.asterisk.hint_context),
        config.public.one_step_window,
        limiter,
        reactor,
    )
    intake.joiner = parts.flow.find_joinable
    intake.listeners.append(metrics.request_created)
    intake.dispatcher = lambda request, extension: run_in_background(
        log, "dispatch", parts.flow.dispatch(request, extension)
    )
    client = parts.client

    async def ami_ready() -> None:
        if not client.connected:
            raise ConnectionError("no logged-in AMI session")

    async def limits_ready() -> str:
        state = limiter.status()
        if not state.ready:
            raise NotReady(state.value)
        return state.value

    pages = PublicPages(
        store=store,
        clock=reactor,
        settings=PublicSettings(
            default_region=config.phone.default_region,
            one_step_window=config.public.one_step_window,
            status_refresh=config.public.status_refresh,
            secure_cookies=config.http.public_url.startswith("https:"),
            test_hooks=config.http.test_hooks,
            trust_forwarded_for=config.http.trust_forwarded_for,
        ),
        csrf=CsrfTokens(secret),
        captchas=CaptchaChallenges(
            reactor, config.public.captcha_ttl, config.public.captcha_length
        ),
        templates=Templates(),
        blocking=lambda f: deferToThreadPool(reactor, reactor.getThreadPool(), f),
        intake=intake,
        readiness={"store": store.ping, "ami": ami_ready, "limits": limits_ready},
    )
    pages.on_refusal = metrics.refused
    pages.limiter = limiter
    root.pages = pages
    # The operator's block management lives next to /metrics: never public.
    operator_root = metrics.resource()
    mount_admin(operator_root, AdminPages(limiter, reactor))
    ListeningService(
        "Metrics",
        endpoints.serverFromString(reactor, config.metrics.listen),
        Site(operator_root, reactor=reactor),
    ).setServiceParent(root)
    site = CallNowSite(
        pages.resource(), max_body=config.http.max_body_bytes, reactor=reactor
    )
    http_endpoint = endpoints.serverFromString(reactor, config.http.listen)
    ListeningService("HTTP", http_endpoint, site).setServiceParent(root)
    if config.http.test_hooks:
        log.warn(
            "http.test_hooks is on: CAPTCHA answers are readable at /_test/. "
            "Never enable this outside tests."
        )
    return root
