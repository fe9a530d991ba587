"""secinfra reference server: internal CA, secrets store and authorization checks."""

__version__ = "0.1.0"
