"""``python -m segkit``: the same command line as the ``segkit`` console script."""

from segkit.cli import main

raise SystemExit(main())
