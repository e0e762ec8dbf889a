"""`python -m shared.cli` runs the `cirrus` command."""

import sys

from shared.cli import main

sys.exit(main())
