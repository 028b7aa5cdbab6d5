"""``python -m odebench``: the ``odebench`` command."""

import sys

from odebench.bench.cli import main

sys.exit(main())
