"""``python -m pyswoole``: the command line."""

import sys

from pyswoole.cli import main

sys.exit(main())
