"""``python -m bench [--peers]``: see bench/run.py and the README's Benchmarks section."""

import sys

from bench.run import main

sys.exit(main())
