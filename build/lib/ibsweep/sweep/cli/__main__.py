"""``python -m ibsweep.sweep.cli``: the ``ibsweep`` command."""

import sys

from ibsweep.sweep.cli.main import main

sys.exit(main())
