"""Command line: ``python -m conformance.runner --sdk python [--cases PATTERN] ...``."""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import coverage, departures, known_failing, mtls_matrix, report
from .adapter import AdapterFailure, AdapterProcess
from .cases import CASES_DIR, Case, CaseError, load_all
from .execute import CaseResult, ServerPool, run_case, skip_reason, skipped
from .sdks import ROOT, SDKS, BuildError, build


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.runner",
        description="Run the conformance cases against one or more SDKs.",
    )
    parser.add_argument(
        "--sdk",
        action="append",
        choices=sorted(SDKS),
        help="SDK to test (repeat for several: the matrix gets one column each; default: all)",
    )
    parser.add_argument(
        "--cases",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only cases whose name matches this glob (e.g. 'retries/*'; repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=ROOT / "reports" / "conformance",
        help="where to write conformance.json, conformance.md, junit.xml",
    )
    parser.add_argument("--cases-dir", type=Path, default=CASES_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print failure details")
    parser.add_argument(
        "--mtls-matrix",
        action="store_true",
        help="instead of cases: every SDK as mTLS server against every SDK as client"
        " (mtls-matrix.json and .md in --report-dir)",
    )
    parser.add_argument(
        "--write-snapshot",
        action="store_true",
        help="with --mtls-matrix: also write docs/conformance/mtls-matrix.json",
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="instead of cases: the spec coverage map (which cases test each MUST and SHOULD;"
        " coverage.json and .md in --report-dir); fails if a MUST has neither a case nor a"
        " reason in conformance/coverage/uncovered.yaml",
    )
    parser.add_argument("--spec-dir", type=Path, default=coverage.SPEC_DIR, help=argparse.SUPPRESS)
    parser.add_argument(
        "--reasons", type=Path, default=coverage.REASONS_PATH, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.write_snapshot and not args.mtls_matrix:
        parser.error("--write-snapshot goes with --mtls-matrix")
    if args.mtls_matrix and (args.cases or args.list):
        parser.error("--mtls-matrix runs no cases: leave out --cases and --list")
    if args.coverage and (args.cases or args.list or args.mtls_matrix or args.sdk):
        parser.error("--coverage runs no cases: leave out --sdk, --cases, --list and --mtls-matrix")
    if not args.sdk and args.mtls_matrix:
        # One column per TLS stack: a language's second client shares its pairs.
        args.sdk = sorted(name for name, sdk in SDKS.items() if sdk.in_mtls_matrix)
    args.sdk = args.sdk or sorted(SDKS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mtls_matrix:
        return _mtls_matrix(args)
    try:
        cases = load_all(args.cases_dir)
    except CaseError as exc:
        print(f"conformance: invalid cases:\n{exc}", file=sys.stderr)
        return 2
    if args.coverage:
        return _coverage(args, cases)
    all_cases = cases
    all_names = {c.full_name for c in cases}
    all_specs = {c.full_name: c.spec for c in cases}
    if args.cases:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.full_name, p) for p in args.cases)]
        if not cases:
            print(f"conformance: no case matches {args.cases}", file=sys.stderr)
            return 2
    if args.list:
        for case in cases:
            print(f"{case.full_name}  [{case.spec}]  {case.description[:90]}")
        return 0

    problems: list[str] = []
    lists: dict[str, dict[str, known_failing.Entry]] = {}
    for sdk in args.sdk:
        try:
            lists[sdk] = known_failing.load(sdk)
        except known_failing.KnownFailingError as exc:
            print(f"conformance: {exc}", file=sys.stderr)
            return 2
        problems += [f"{sdk}: {p}" for p in known_failing.stale_entries(lists[sdk], all_names)]

    # The features a client declares decide which cases it is given.
    features = _features(args.sdk)
    if features is None:
        return 1
    for sdk in args.sdk:
        # Its README's departures from SHOULDs match what the suite sees (spec 1.1.2).
        problems += departures.check_sdk(
            sdk, known_failing=lists[sdk], case_specs=all_specs, declared=features[sdk]
        )

    started = time.monotonic()
    # One spare default server per worker starts while cases run (see ServerPool).
    pool = ServerPool(spares=args.jobs)
    jobs = [(case, sdk) for sdk in args.sdk for case in cases]
    # Cases that share a server last, so the fresh-server cases spread over workers
    # first; among those the longest first, so no long case starts last and runs alone.
    jobs.sort(key=lambda job: (job[0].share_server, -_estimated_seconds(job[0])))
    rows: list[report.Row] = []
    results: list[CaseResult] = []
    runnable: list[tuple[Case, str]] = []
    for case, sdk in jobs:
        reason = skip_reason(case, sdk, features[sdk])
        if reason is None:
            runnable.append((case, sdk))
        else:
            results.append(skipped(case, sdk, reason))
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as executor:
            futures = [executor.submit(run_case, case, sdk, pool) for case, sdk in runnable]
            for result in [*results, *(future.result() for future in futures)]:
                listed = lists[result.sdk].get(result.case.full_name)
                status = known_failing.classify(result.outcome, listed)
                if listed is not None and result.outcome == known_failing.SKIPPED:
                    result.failures = [known_failing.stale_skip(listed, result.failures[0])]
                row = report.Row(
                    case=result.case.full_name,
                    suite=result.case.suite,
                    spec=result.case.spec,
                    description=result.case.description,
                    sdk=result.sdk,
                    status=status,
                    seconds=result.seconds,
                    failures=result.failures,
                    reason=listed.reason if listed else "",
                    details=result.details,
                )
                rows.append(row)
                _print_row(row, args.verbose)
    finally:
        pool.close()
    wall = time.monotonic() - started
    # Reports list cases in file order whatever order they ran in.
    order = {case.full_name: index for index, case in enumerate(cases)}
    rows.sort(key=lambda row: (order[row.case], row.sdk))
    ok = not problems and not any(r.status in known_failing.FAILING_STATUSES for r in rows)
    paths = report.write_all(args.report_dir, rows, wall_seconds=wall, ok=ok, problems=problems)
    for problem in problems:
        print(f"conformance: {problem}", file=sys.stderr)
    counts = ", ".join(f"{k}: {v}" for k, v in report.summary(rows).items())
    print(f"\nconformance: {'ok' if ok else 'FAILED'} in {wall:.1f} s ({counts})")
    # The coverage map needs no run, so every run's reports carry it (it never
    # changes the run's outcome: `--coverage` and conformance/tests check it).
    try:
        spec_map = _coverage_map(args, all_cases)
        paths += coverage.write(spec_map, args.report_dir)
        print(coverage.summary_line(spec_map))
    except coverage.CoverageError as exc:
        print(f"conformance: no coverage map: {exc}", file=sys.stderr)
    print("reports: " + ", ".join(str(p) for p in paths))
    return 0 if ok else 1


def _coverage_map(args: argparse.Namespace, cases: list[Case]) -> coverage.Coverage:
    return coverage.compute(
        spec_dir=args.spec_dir,
        reasons_path=args.reasons,
        case_covers={case.full_name: case.covers for case in cases},
    )


def _coverage(args: argparse.Namespace, cases: list[Case]) -> int:
    """``--coverage``: write the map, print its summary; 1 if it is not ok."""
    try:
        spec_map = _coverage_map(args, cases)
    except coverage.CoverageError as exc:
        print(f"conformance: coverage: {exc}", file=sys.stderr)
        return 2
    paths = coverage.write(spec_map, args.report_dir)
    for problem in spec_map.problems:
        print(f"conformance: coverage: {problem}", file=sys.stderr)
    for entry in spec_map.neither():
        print(
            f"conformance: coverage: MUST {entry.requirement.id} (docs/spec/"
            f"{entry.requirement.page}:{entry.requirement.line}) has neither a case nor a"
            f" reason in {args.reasons.name}",
            file=sys.stderr,
        )
    print(coverage.summary_line(spec_map))
    print("reports: " + ", ".join(str(p) for p in paths))
    return 0 if spec_map.ok else 1


def _features(sdks: list[str]) -> dict[str, frozenset[str]] | None:
    """Build each SDK's client and read the features of its hello (None: it failed)."""
    features: dict[str, frozenset[str]] = {}
    for sdk in sdks:
        try:
            build(SDKS[sdk])
            features[sdk] = AdapterProcess.probe(list(SDKS[sdk].command), ROOT)
        except BuildError as exc:
            print(f"conformance: {exc}", file=sys.stderr)
            return None
        except AdapterFailure as exc:
            print(f"conformance: {sdk}: the client's hello: {exc}", file=sys.stderr)
            return None
    return features


def _mtls_matrix(args: argparse.Namespace) -> int:
    features = _features(args.sdk)
    if features is None:
        return 1
    ok, pairs, wall = mtls_matrix.run(args.sdk, features)
    data = mtls_matrix.report(ok, pairs, wall)
    paths = mtls_matrix.write(data, args.report_dir)
    if args.write_snapshot:
        command = "python -m conformance.runner --mtls-matrix --write-snapshot"
        paths.append(mtls_matrix.write_snapshot(data, command))
    print(mtls_matrix.markdown(data))
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(data["summary"].items()))
    print(f"mtls matrix: {'ok' if ok else 'FAILED'} in {wall:.1f} s ({counts})")
    print("reports: " + ", ".join(str(p) for p in paths))
    return 0 if ok else 1


def _estimated_seconds(case: Case) -> float:
    """What a case spends waiting on purpose (sleeps, intervals), for ordering only."""
    total = 0.0
    for step in case.steps:
        if "sleep" in step:
            total += float(step["sleep"])
        elif "repeat" in step:
            total += int(step["times"]) * (float(step.get("interval", 0)) + 0.05)
    return total


def _print_row(row: report.Row, verbose: bool) -> None:
    mark = {"passed": "PASS", "known_failing": "XFAIL", "unexpected_pass": "XPASS"}.get(
        row.status, row.status.upper()
    )
    print(f"{mark:<12} {row.sdk:<7} {row.case} ({row.seconds:.1f} s)", flush=True)
    shown = row.status in known_failing.FAILING_STATUSES or row.status == known_failing.SKIPPED
    if shown or (verbose and row.failures):
        for failure in row.failures[:8]:
            print(f"             {failure[:1000]}")
        if row.status == "unexpected_pass":
            print(f"             listed as known failing ({row.reason}) but passed: unlist it")
        if verbose and row.details:
            print("             " + row.details.replace("\n", "\n             ")[:4000])


if __name__ == "__main__":
    sys.exit(main())
