"""`python -m skinlib` is the same as the `skinlib` command."""

import sys

from .cli import main

sys.exit(main())
