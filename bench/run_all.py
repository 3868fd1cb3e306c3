"""`make bench`: runs every benchmark under bench/ in turn and prints its figures.

Benchmarks print measurements; they assert nothing. Pass `--quick` for smaller sizes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    extra = [a for a in sys.argv[1:] if a == "--quick"]
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n### {script.name}", flush=True)
        started = time.perf_counter()
        args = [sys.executable, str(script)]
        if extra and "--quick" in script.read_text():
            args += extra
        result = subprocess.run(args, cwd=HERE.parent, check=False)
        print(f"({script.name}: {time.perf_counter() - started:.0f} s, exit {result.returncode})", flush=True)
        if result.returncode != 0:
            failures.append(script.name)
    if failures:
        print(f"\nfailed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
