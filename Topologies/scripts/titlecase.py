#!/usr/bin/env python3
"""Stream stage: reads one item per line on stdin, writes exactly one line per item.

Each output line is the input in title case, prefixed by $TITLECASE_PREFIX when set.
The flush after every line matters: the worker waits for each answer before sending on.
"""
import os
import sys

prefix = os.environ.get("TITLECASE_PREFIX", "")

for line in sys.stdin:
    item = line.rstrip("\n")
    sys.stdout.write(prefix + item.title() + "\n")
    sys.stdout.flush()
