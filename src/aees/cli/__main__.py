"""``python -m aees.cli ...``: the ``aees`` console script without the script."""

import sys

from aees.cli import main

sys.exit(main())
