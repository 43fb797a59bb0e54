"""Progress of the training stages: a tqdm bar on a terminal, log lines otherwise."""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from tqdm import tqdm

log = logging.getLogger("training_job")


class Stages:
    """Times and reports each stage; ``with stages("k-search", total=9) as tick: tick(i)``.

    ``on_stage(name)`` is called as a stage starts, ``on_tick(name, done, total)`` as its steps are done.
    """

    def __init__(self, on_stage: Callable[[str], Any] | None = None, bar: bool | None = None,
                 on_tick: Callable[[str, int, int], Any] | None = None) -> None:
        self.on_stage = on_stage
        self.on_tick = on_tick
        self.bar = sys.stderr.isatty() if bar is None else bar
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """Run one stage; yields a callback taking the number of steps done."""
        if self.on_stage:
            self.on_stage(name)
        log.info("stage %s ...", name)
        start = time.monotonic()
        bar = tqdm(total=total, desc=name, unit="k", leave=False) if (self.bar and total) else None

        def tick(done: int) -> None:
            if self.on_tick and total:
                self.on_tick(name, done, total)
            if bar is not None:
                bar.update(done - bar.n)
            elif total:
                log.info("stage %s: %d/%d", name, done, total)

        try:
            yield tick
        finally:
            if bar is not None:
                bar.close()
            self.timings[name] = time.monotonic() - start
            log.info("stage %s done in %.2f s", name, self.timings[name])
