"""``python -m dosimetry.cli``: the same as the ``dosimetry`` command."""

import sys

from dosimetry.cli import main

sys.exit(main())
