"""secinfra Python SDK: mTLS workload identity, secrets and authorization checks.

The client surface arrives with the SDK proper; today the package holds the
generated models and service clients (``secinfra._gen``) and the runtime
types they call (``secinfra._runtime``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
