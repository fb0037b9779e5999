"""``python -m dosimetry.cli``: the same as the ``dosimetry`` command."""

import sys

from . import main

sys.exit(main())
