"""Recent "blocked" answers, given again without asking the store until they can change.

A flood of one visitor against a blocked key is the cheapest attack to send and
used to be the dearest to answer: every request built its plan (four HMACs) and
asked the store (a Redis round trip) for an answer that cannot change for hours.
:class:`BlockedAnswers` remembers, per request (its raw identity: client address,
link and number), the "blocked" verdict the store gave and until when the block
runs, and answers the same request from memory.

Why that is exact: a blocked evaluation writes nothing (blocks are checked before
any bucket, and a blocked request records no denial), so skipping it changes no
state; and the verdict for the same request stays the same until the block ends,
unless a block is lifted or another of the request's keys gets a (longer) block.
In one process both happen in the :class:`~callnowd.limits.limiter.Limiter`, which
then forgets every remembered answer (:meth:`BlockedAnswers.clear`). With Redis,
other daemons and ``callnowctl`` create and lift blocks without this process
knowing, so each answer is also forgotten ``ttl`` seconds after the store gave it:
a lifted block is honoured within ``ttl`` (``[limits] blocked_answer_ttl``), and
the store is asked about a flooding request at most once per ``ttl``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from callnowd.limits.ratelimit import US_PER_S, Reason, Verdict, to_us

#: Requests remembered; the one remembered longest ago is forgotten first.
DEFAULT_SIZE = 4096


class BlockedAnswers:
    """Remembered "blocked" verdicts (see the module docstring).

    Args:
        ttl: seconds an answer is trusted after the store gave it; None: until
            the block ends or :meth:`clear` (one process owns every block).
        size: how many requests are remembered at most.
    """

    def __init__(self, ttl: float | None, size: int = DEFAULT_SIZE) -> None:
        self._ttl_us = None if ttl is None else to_us(ttl)
        self._size = size
        # request -> (refusing key, block end us (-1: permanent), trusted until us)
        self._answers: OrderedDict[Hashable, tuple[str, int, int]] = OrderedDict()

    def __len__(self) -> int:
        """How many answers are remembered."""
        return len(self._answers)

    def get(self, request: Hashable, now: float) -> Verdict | None:
        """The remembered verdict for ``request`` at ``now``, or None to ask the store."""
        entry = self._answers.get(request)
        if entry is None:
            return None
        key, until_us, trusted_us = entry
        now_us = to_us(now)
        if now_us >= trusted_us or 0 <= until_us <= now_us:
            del self._answers[request]
            return None
        retry = None if until_us < 0 else (until_us - now_us) / US_PER_S
        return Verdict(False, Reason.BLOCKED, retry, key)

    def remember(self, request: Hashable, verdict: Verdict, now: float) -> None:
        """Keep ``verdict`` for ``request`` if it is a block (other verdicts are not)."""
        if verdict.reason is not Reason.BLOCKED or verdict.key is None:
            return
        now_us = to_us(now)
        if verdict.retry_after is None:
            until_us = -1
        else:
            until_us = now_us + round(verdict.retry_after * US_PER_S)
            if until_us <= now_us:
                return
        trusted_us = 2**62 if self._ttl_us is None else now_us + self._ttl_us
        if trusted_us <= now_us:
            return
        self._answers[request] = (verdict.key, until_us, trusted_us)
        self._answers.move_to_end(request)
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer (a block was lifted or created here)."""
        self._answers.clear()
