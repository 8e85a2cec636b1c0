#!/usr/bin/env python3
"""Per-item stage: reads one item on stdin and prints its first whitespace-separated field.

Used after `wc -c FILE`, whose output is "COUNT FILE" (padded with spaces on macOS).
An item with no field is an error: exit non-zero so the item is retried, then dead-lettered.
"""
import sys

fields = sys.stdin.read().split()
if not fields:
    sys.stderr.write("first_field.py: empty input\n")
    sys.exit(1)
print(fields[0])
