"""``python -m discover.cli``: the command line, as the ``discover`` script runs it."""

import sys

from discover.cli import main

sys.exit(main())
