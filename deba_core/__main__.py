"""``python -m deba``: the command line."""

import sys

from deba.cli import main

sys.exit(main())
