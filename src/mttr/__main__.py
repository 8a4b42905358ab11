"""``python -m mttr``: the CLI through a chosen interpreter, with no ``mttr`` script on PATH needed."""

import sys

from .cli import main

sys.exit(main())
