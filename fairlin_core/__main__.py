"""``python -m fairlin_core`` (and the ``fairlin`` console script): the command-line interface."""

from .cli import main

raise SystemExit(main())
