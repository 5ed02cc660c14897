"""Parameter types every command shares: bounded, finite numbers.

click's ``float`` accepts ``inf``, ``nan``, ``-3`` and ``1e308``; a width, a distance or a
wait must be finite and within a plausible range. :class:`Bounded` calls
:func:`curation.checks.number`, so the library and the command line refuse in the same
words; click reports the refusal as a usage error (exit 2).
"""

from __future__ import annotations

from typing import Any

import click


class Bounded(click.ParamType):
    """A finite float in (minimum, maximum] (or [minimum, maximum] when ``inclusive_min``)."""

    name = "number"

    def __init__(self, maximum: float, *, minimum: float = 0.0, inclusive_min: bool = False,
                 integer: bool = False) -> None:
        self.maximum, self.minimum, self.inclusive_min, self.integer = maximum, minimum, inclusive_min, integer
        self.name = "integer" if integer else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..checks import number
        from ..errors import OptionError

        field = param.opts[0] if param is not None and param.opts else "value"
        try:
            x = number(value, field=field, minimum=self.minimum, maximum=self.maximum,
                       inclusive_min=self.inclusive_min)
        except OptionError as exc:
            self.fail(f"{exc.message} (expected {exc.expected}, found {exc.found!r})", param, ctx)
        if self.integer:
            if x != int(x):
                self.fail(f"not a whole number (found {value!r})", param, ctx)
            return int(x)
        return x

    def __repr__(self) -> str:
        return f"Bounded({self.minimum}, {self.maximum})"


#: seconds to wait for another writer's lock: 0 .. one day
WAIT = Bounded(86400.0, inclusive_min=True)
#: a length in nanometres: (0, 1 mm]
LENGTH_NM = Bounded(1e6)
#: a volume in cubic nanometres: [0, 1 mm³]
VOLUME_NM3 = Bounded(1e18, inclusive_min=True)
#: a width in pixels: (0, 10000]
WIDTH_PX = Bounded(1e4)
#: a fraction: [0, 1]
FRACTION = Bounded(1.0, inclusive_min=True)
