"""Run a command, then print its wall time and the peak resident memory of any process
it started (the largest of the command and its descendants that were waited for), and
exit with the command's own exit code.

    python scripts/peak.py python -m pytest ...
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python scripts/peak.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        code = subprocess.call(argv)
    except KeyboardInterrupt:
        code = 130
    wall = time.monotonic() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"wall time {wall / 60:.1f} min ({wall:.0f} s); peak resident memory of any "
          f"process {peak_kib / 2**20:.2f} GiB", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
