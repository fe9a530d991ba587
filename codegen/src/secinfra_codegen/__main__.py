"""Entry point for ``python -m secinfra_codegen``."""

import sys

from .cli import main

sys.exit(main())
