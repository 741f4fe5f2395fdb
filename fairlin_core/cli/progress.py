"""Progress on the terminal: one tqdm bar on stderr fed by the engine's progress callbacks."""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..runtime import Progress


class TqdmProgress:
    """A progress callback drawing one tqdm bar on stderr (fraction in per mille, the message as postfix).

    The bar is drawn from the first report on, so a command refused before any work (bad input) writes
    nothing to stderr but its one error line.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: tqdm | None = None

    def __call__(self, update: Progress) -> None:
        if self.bar is None:
            self.bar = tqdm(total=1000, desc=self.description, file=sys.stderr, leave=False,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")
        self.bar.set_postfix_str(update.message, refresh=False)
        self.bar.update(int(update.fraction * 1000) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
