"""`python -m server`: the same entry point as the console script."""

import sys

from server.cli import main

sys.exit(main())
