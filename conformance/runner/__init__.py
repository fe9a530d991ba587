"""The conformance runner: ``python -m conformance.runner --sdk python``.

- `cases`: load and validate ``conformance/cases/*.yaml``;
- `server`: a test-mode reference server per case, and admin access to it;
- `adapter`: an SDK's conformance client over the adapter protocol
  (docs/conformance/adapter-protocol.md);
- `execute`: run one case (setup, steps, checks);
- `matchers`: expected values and ``$`` operators;
- `known_failing`: the per-SDK known-failing lists;
- `report`: JSON, Markdown matrix and JUnit XML.
"""
