"""Stage timing for one pipeline call: seconds per named stage, optionally sub-stages and denoising steps."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext

import torch


class StageTimer:
    """Seconds per named stage, and ``finish()``: the wall time since the timer was made (untimed work included).

    With ``detailed``, ``substage()`` and ``step_started()`` / ``step_finished()`` also record sub-stages and
    denoising steps (each synchronises the device, so they are off unless asked for).
    """

    def __init__(self, device: torch.device, detailed: bool = False) -> None:
        self.device = device
        self.detailed = detailed
        self.timings: dict[str, float] = {}
        self.substages: dict[str, float] = {}
        self.steps: list[float] = []
        self._start = time.perf_counter()
        self._step_start = 0.0

    @contextmanager
    def stage(self, name: str, into: dict[str, float] | None = None):
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        into = self.timings if into is None else into
        into[name] = into.get(name, 0.0) + time.perf_counter() - start

    def substage(self, name: str):
        return self.stage(name, into=self.substages) if self.detailed else nullcontext()

    def step_started(self) -> None:
        if self.detailed:
            self._sync()
            self._step_start = time.perf_counter()

    def step_finished(self) -> None:
        if self.detailed:
            self._sync()
            self.steps.append(time.perf_counter() - self._step_start)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def finish(self) -> dict[str, float]:
        self._sync()
        self.timings["total"] = time.perf_counter() - self._start
        return self.timings
