"""``python -m segkit.serve``: the same as ``segkit serve``."""

import sys

from segkit.serve import main

sys.exit(main(sys.argv[1:]))
