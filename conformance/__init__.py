"""The secinfra conformance suite: cases (YAML), the runner, and reports."""
