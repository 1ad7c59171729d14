"""Image and audio CAPTCHA challenges, with answers kept server-side.

Each page load issues a new challenge id; the answer never leaves the server except
drawn in the image or spoken in the audio. Answers are single-use (checked once,
right or wrong) and expire after ``ttl`` seconds.
"""

from __future__ import annotations

import io
import secrets
from collections import OrderedDict

from captcha.audio import AudioCaptcha
from captcha.image import ImageCaptcha
from twisted.internet.interfaces import IReactorTime

_DIGITS = "0123456789"


class CaptchaChallenges:
    """In-process store of CAPTCHA answers (one daemon; Redis when several).

    Args:
        clock: where time comes from.
        ttl: seconds a challenge stays answerable.
        length: digits per answer.
        capacity: most challenges kept; the oldest are dropped beyond it.
    """

    def __init__(
        self, clock: IReactorTime, ttl: float, length: int, capacity: int = 100_000
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._length = length
        self._capacity = capacity
        self._answers: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def issue(self) -> str:
        """Create a challenge and return its id."""
        now = self._clock.seconds()
        self._prune(now)
        challenge_id = secrets.token_urlsafe(16)
        answer = "".join(secrets.choice(_DIGITS) for _ in range(self._length))
        self._answers[challenge_id] = (answer, now + self._ttl)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
        return challenge_id

    def answer_for(self, challenge_id: str) -> str | None:
        """The answer of a live challenge (to draw or speak it), without using it."""
        entry = self._answers.get(challenge_id)
        if entry is None or entry[1] <= self._clock.seconds():
            return None
        return entry[0]

    def verify(self, challenge_id: str, answer: str) -> bool:
        """Check an answer; the challenge is used up whatever the outcome."""
        entry = self._answers.pop(challenge_id, None)
        if entry is None or entry[1] <= self._clock.seconds():
            return False
        given = answer.strip().replace(" ", "")
        return secrets.compare_digest(given.encode(), entry[0].encode())

    def _prune(self, now: float) -> None:
        # Entries are in issue order and share one ttl, so expired ones are first.
        while self._answers:
            first = next(iter(self._answers.values()))
            if first[1] > now:
                break
            self._answers.popitem(last=False)


def render_image(answer: str) -> bytes:
    """A PNG picture of ``answer`` (CPU-bound: run it in a thread)."""
    buffer: io.BytesIO = ImageCaptcha(width=220, height=80).generate(answer)
    return buffer.getvalue()


def render_audio(answer: str) -> bytes:
    """A WAV recording of ``answer`` spoken digit by digit (run it in a thread)."""
    return bytes(AudioCaptcha().generate(answer))
