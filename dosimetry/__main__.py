"""``python -m dosimetry``: the same as the ``dosimetry`` command."""

import sys

from dosimetry.cli import main

if __name__ == "__main__":  # not when a spawned child process imports this module (dosimetry.export.background)
    sys.exit(main())
