"""Django settings for benchmark processes: portal.settings unchanged, except that collected static
files go to the run's throwaway directory (BENCH_STATIC_ROOT) instead of the repo's staticfiles/,
so a benchmark with DEBUG off never writes into the working tree."""
import os
from pathlib import Path

from portal import settings as base_settings

# Every setting of the portal's, by name (a settings module is its upper-case names).
globals().update({name: value for name, value in vars(base_settings).items() if name.isupper()})

if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = Path(os.environ["BENCH_STATIC_ROOT"])
