"""``callnowctl blocks`` against a real Redis: blocks made by one limiter, seen by the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import attrs
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from callnowd.cli import build_parser
from callnowd.cli_blocks import BlocksCliError, run
from callnowd.config import Config
from callnowd.limits.limiter import Limiter
from callnowd.limits.ratelimit import KeyKind
from callnowd.limits.redis import RedisRateLimitStore, connect_redis
from callnowd.limits.settings import LimitSettings, parse_redis_url
from tests.redis_server import SKIP_REASON, RedisServer

SECRET = b"r" * 32
VICTIM = "+12125550142"


class RedisBlocksTests(TestCase):
    """The Redis path: no daemon involved."""

    skip = SKIP_REASON
    timeout = 30

    async def test_list_and_lift_in_redis(self) -> None:
        """Blocks written to Redis by a limiter are listed and lifted by the CLI."""
        server = RedisServer()
        server.start()
        self.addCleanup(server.cleanup)
        settings = LimitSettings(
            redis_url=f"redis://127.0.0.1:{server.port}/0",
            destination_short_limit=1,
            escalate_after=1,
        )
        connection = connect_redis(reactor, parse_redis_url(settings.redis_url))
        store = RedisRateLimitStore(connection, reactor, timeout=2.0)
        limiter = Limiter(store, settings, SECRET)
        try:
            for i in range(4):
                await limiter.check(f"192.0.2.{i}", "john", VICTIM, 0.0)
        finally:
            await store.close()
        base_dir = Path(self.mktemp())
        (base_dir / "var").mkdir(parents=True)
        (base_dir / "var" / "secret.key").write_bytes(SECRET)
        config = attrs.evolve(Config(path=Path()), limits=settings)

        async def ctl(*argv: str) -> str:
            args: argparse.Namespace = build_parser().parse_args(["blocks", *argv])
            return await run(args, config, reactor, now=0.0, base_dir=base_dir)

        key = limiter.key(KeyKind.DESTINATION, VICTIM).name
        listed = await ctl("list")
        self.assertEqual(listed.split("\t")[:2], [key, "destination_short"])
        self.assertEqual(await ctl("lift", "--number", VICTIM), f"lifted {key}")
        self.assertEqual(await ctl("list"), "(no blocks)")
        with self.assertRaises(BlocksCliError):
            await ctl("lift", key)

        server.kill()
        with self.assertRaises(BlocksCliError) as raised:
            await ctl("list")
        self.assertIn(f"Redis at 127.0.0.1:{server.port}/0", str(raised.exception))
