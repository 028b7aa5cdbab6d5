"""Time limits that hold on a busy machine: a limit measured on an idle one, stretched by the load per core."""

from __future__ import annotations

import os

#: the most a limit is stretched: a hang still ends the test
MAX_STRETCH = 10.0


def scaled(seconds: float) -> float:
    """``seconds`` times the 1-minute load average per core (at least 1, at most MAX_STRETCH): at load 20 on two
    cores a 60 s limit becomes 600 s, on an idle machine it stays 60 s."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return seconds
    return seconds * min(MAX_STRETCH, max(1.0, load / (os.cpu_count() or 1)))
