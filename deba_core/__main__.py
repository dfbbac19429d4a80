"""``python -m deba``: the command line."""

import sys

from deba.app.cli import main

sys.exit(main())
