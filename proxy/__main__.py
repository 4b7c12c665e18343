"""``python -m proxy`` is the ``pandadoc-proxy`` command."""

import sys

from .cli import main

sys.exit(main())
