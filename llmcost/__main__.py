"""`python -m llmcost`: the same command line as the `llmcost` console script."""

import sys

from llmcost.cli import main

sys.exit(main())
