"""Reads the pantry from data/pantry.csv and prints a JSON summary."""

import csv
import json
import sys

with open("data/pantry.csv", newline="") as f:
    rows = list(csv.DictReader(f))

by_shelf = {}
for row in rows:
    by_shelf.setdefault(row["shelf"], []).append(row["item"])

print(
    json.dumps(
        {
            "python": sys.version.split()[0],
            "items": len(rows),
            "total_grams": sum(int(r["grams"]) for r in rows),
            "shelves": {shelf: sorted(items) for shelf, items in sorted(by_shelf.items())},
        },
        indent=2,
    )
)
