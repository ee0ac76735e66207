#!/usr/bin/env python3
"""Checks the README's excerpts of code that is built elsewhere (the demo app, the examples).

A ```swift block whose first line is `// Excerpt of PATH` (a file or a folder of the repository)
must have every other non-empty line, stripped, among the lines of that file (or of the Swift
files under that folder): the excerpt may leave lines out, but never say what the code does not.

    scripts/docs/excerpts.py   # exit status 1 when a line is not found
"""
import glob, os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
readme = open(os.path.join(ROOT, "README.md")).read()
failures, checked = 0, 0
for block in re.findall(r"```swift\n(.*?)```", readme, re.S):
    lines = block.split("\n")
    match = re.match(r"\s*// Excerpt of (\S+)", lines[0])
    if not match:
        continue
    path = os.path.join(ROOT, match.group(1))
    files = sorted(glob.glob(os.path.join(path, "**/*.swift"), recursive=True)) if os.path.isdir(path) else [path]
    source = {line.strip() for name in files if os.path.exists(name) for line in open(name).read().split("\n")}
    missing = [line.strip() for line in lines[1:] if line.strip() and line.strip() not in source]
    checked += 1
    if not files or not source or missing:
        failures += 1
        print(f"excerpt of {match.group(1)}: lines not in the code:", *(missing or ["(no such file)"]), sep="\n  ")
print(f"excerpts: {checked} README excerpts checked against the code")
sys.exit(1 if failures or not checked else 0)
