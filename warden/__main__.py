"""`python -m warden`: the same as the `warden` command."""

import sys

from warden.cli import main

sys.exit(main())
