"""`python -m clfbench.cli`: the same as the `clfbench` command."""

import sys

from clfbench.cli import main

sys.exit(main())
