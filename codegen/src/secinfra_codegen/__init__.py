"""secinfra code generator: api/secinfra/v1/*.proto -> SDK models and clients,
the server route table and the OpenAPI document.

Run ``python -m secinfra_codegen`` from the repo (``--check`` for the drift
check). Pipeline: `protoc` (grpcio-tools) -> `loader` (validated `model.Api`)
-> `targets` (Jinja2 templates per target) -> `pipeline` (format, write, check).
"""

__version__ = "0.1.0"
