"""Django settings for benchmark processes: portal.settings unchanged, except that collected static
files go to the run's throwaway directory (BENCH_STATIC_ROOT) instead of the repo's staticfiles/,
so a benchmark with DEBUG off never writes into the working tree."""
import os
from pathlib import Path

from portal.settings import *

if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = Path(os.environ["BENCH_STATIC_ROOT"])
