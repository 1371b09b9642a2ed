"""Random (version 4) UUIDs for event and message ids, cheaply.

Every event carries two random UUIDs (``event.id`` and ``messageid``, as DeepStream writes).
``uuid.uuid4()`` reads the OS's random source once per call (a system call) and ``str()`` then
formats it in Python: ~7 µs of the ~22 µs an event cost to build, on the stage thread that
bounds a busy pipeline. Here the 122 random bits come from a Mersenne Twister seeded from
``os.urandom`` (and reseeded in a forked child, which must not repeat its parent's ids), and
the string id is formatted from hex directly: ~1 µs each.

These ids name events; they are not secrets (someone who saw thousands of them could predict
the next): nothing may use them as tokens.
"""

from __future__ import annotations

import os
import random
from uuid import UUID

# Version 4 and the RFC 4122 variant, set into a 128-bit integer.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)

_random = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_random.seed)  # seed() with no argument: os.urandom again


def random_uuid() -> UUID:
    """A random (version 4) UUID, like ``uuid.uuid4()``."""
    return UUID(int=_random.getrandbits(128) & _CLEAR | _SET)


def random_uuid_str() -> str:
    """``str(random_uuid())``, without building the UUID object."""
    h = f"{_random.getrandbits(128) & _CLEAR | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
