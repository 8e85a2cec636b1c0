"""A stream stage child that exits on some lines: always on multiples of 1000, once on lines ending in 500."""
import os
import sys

marks = os.environ["CHAOS_MARKS"]
for line in sys.stdin:
    n = int(line)
    if n % 1000 == 0:
        sys.stderr.write(f"always crashing on {n}\n")
        sys.exit(3)
    if n % 1000 == 500:
        mark = os.path.join(marks, str(n))
        if not os.path.exists(mark):
            open(mark, "w").close()
            sys.stderr.write(f"crashing once on {n}\n")
            sys.exit(4)
    sys.stdout.write(line)
    sys.stdout.flush()
