#!/usr/bin/env python3
"""Stream stage with output: json-array. Reads one JSON event per line; for each event
writes one line holding a JSON array: the event with its score when the score is high
enough, or [] to filter it out.
"""
import json
import sys

THRESHOLD = 50.0

for line in sys.stdin:
    try:
        event = json.loads(line)
        score = float(event.get("amount", 0)) * (2.0 if event.get("kind") == "purchase" else 1.0)
    except (ValueError, AttributeError):
        sys.stdout.write("[]\n")
        sys.stdout.flush()
        continue
    outputs = []
    if score >= THRESHOLD:
        event["score"] = score
        outputs.append(json.dumps(event, sort_keys=True))
    sys.stdout.write(json.dumps(outputs) + "\n")
    sys.stdout.flush()
