"""`python -m lab` is the `sft-lab` command."""
import sys

from .cli import main

sys.exit(main())
