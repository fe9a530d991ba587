"""``python -m secinfra_codegen [--root DIR] [--check]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import CodegenError
from .pipeline import compare, find_root, generate_repo, write


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m secinfra_codegen",
        description=(
            "Generate SDK models and clients, the server route table and the OpenAPI "
            "document from api/secinfra/v1/*.proto."
        ),
    )
    parser.add_argument(
        "--root",
        type=Path,
        help="repo root (default: the first folder holding api/secinfra/ at or above the cwd)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any generated file differs from what would be generated",
    )
    args = parser.parse_args(argv)
    try:
        root = args.root.resolve() if args.root else find_root(Path.cwd())
        outputs = generate_repo(root)
        if args.check:
            drifts = compare(outputs, root)
            for drift in drifts:
                print(f"drift: {drift.path} ({drift.kind})", file=sys.stderr)
            for drift in drifts:
                sys.stdout.write(drift.diff)
            if drifts:
                print(
                    f"secinfra codegen: {len(drifts)} generated file(s) out of date; "
                    "run `python -m secinfra_codegen` and commit the result",
                    file=sys.stderr,
                )
                return 1
            print("secinfra codegen: generated files are up to date")
            return 0
        changes = write(outputs, root)
        for change in changes:
            verb = "deleted" if change.kind == "stale" else "wrote"
            print(f"{verb} {change.path}")
        total = sum(len(o.files) for o in outputs)
        print(f"secinfra codegen: {total} files generated, {len(changes)} changed")
        return 0
    except CodegenError as exc:
        print(f"secinfra codegen: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
