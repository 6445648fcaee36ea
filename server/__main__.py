"""`python -m server`: the same entry point as the console script; it also runs as a file (the bundle's entry_point)."""

import os
import sys

if not __package__:
    # Run as a file, Python puts this directory first on sys.path, where http.py would shadow the
    # standard library's http module: start from the directory above, as `python -m server` does.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from server.cli import main  # noqa: E402 (after the sys.path repair above)

sys.exit(main())
