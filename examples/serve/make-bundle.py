#!/usr/bin/env python3
"""Turn a change directory (before/ and after/ trees, optional metrics.json)
into the JSON change bundle that `POST /v1/checks` and `POST /v1/rollouts`
take, on stdout. Text files only (binary files would need `before-base64` /
`after-base64`).

    python3 examples/serve/make-bundle.py examples/changes/safe-edit > examples/serve/safe-edit.json
"""
import json
import os
import sys


def main(change):
    paths = set()
    for side in ("before", "after"):
        base = os.path.join(change, side)
        for folder, _, files in os.walk(base):
            for name in files:
                paths.add(os.path.relpath(os.path.join(folder, name), base).replace(os.sep, "/"))
    documents = []
    for path in sorted(paths):
        document = {"path": path}
        for side in ("before", "after"):
            file = os.path.join(change, side, path)
            if os.path.isfile(file):
                with open(file, encoding="utf-8") as f:
                    document[side] = f.read()
        documents.append(document)
    metrics = {}
    metrics_file = os.path.join(change, "metrics.json")
    if os.path.isfile(metrics_file):
        with open(metrics_file, encoding="utf-8") as f:
            metrics = json.load(f)
    json.dump({"documents": documents, "metrics": metrics}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make-bundle.py CHANGE_DIR > bundle.json")
    main(sys.argv[1])
