#!/usr/bin/env python3
"""Validate a `pm export` directory with the engines' own schemas, then print
every YAML document in it as PyYAML (a YAML 1.1 reader) reads it, as JSON on
stdout, so a caller can check that every string came back as the same string.

    validate-exports.py compose DIR SCHEMA   # the Compose specification JSON schema
    validate-exports.py kubernetes DIR       # kubernetes-validate's bundled schemas

Exit 0 when valid, 1 with the problems on stderr otherwise, 2 on bad usage.
"""

import json
import os
import subprocess
import sys

import yaml

KUBERNETES_VERSION = "1.30.0"


def load_all(directory):
    docs = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yaml"):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                docs[name] = list(yaml.safe_load_all(f))
    return docs


def main(argv):
    if len(argv) < 3 or argv[1] not in ("compose", "kubernetes"):
        print(__doc__, file=sys.stderr)
        return 2
    fmt, directory = argv[1], argv[2]
    docs = load_all(directory)
    if not docs:
        print(f"{directory}: no YAML files", file=sys.stderr)
        return 1
    if fmt == "compose":
        import jsonschema

        if len(argv) != 4:
            print(__doc__, file=sys.stderr)
            return 2
        with open(argv[3], encoding="utf-8") as f:
            schema = json.load(f)
        validator = jsonschema.Draft7Validator(schema)
        problems = []
        for name, documents in docs.items():
            for doc in documents:
                for error in validator.iter_errors(doc):
                    path = "/".join(str(p) for p in error.absolute_path)
                    problems.append(f"{name}: {path}: {error.message}")
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
    else:
        files = [os.path.join(directory, name) for name in docs]
        run = subprocess.run(
            ["kubernetes-validate", "-k", KUBERNETES_VERSION, "--strict", "--quiet"] + files,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0 or run.stdout.strip() or run.stderr.strip():
            print(run.stdout + run.stderr, file=sys.stderr)
            return 1
    # A value PyYAML did not read as a plain JSON type (a date, a set...) is
    # marked, so a caller comparing strings sees the difference.
    json.dump(
        docs,
        sys.stdout,
        ensure_ascii=False,
        sort_keys=True,
        default=lambda o: f"<{type(o).__name__}: {o}>",
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
