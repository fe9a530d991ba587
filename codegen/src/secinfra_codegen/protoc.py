"""Run protoc (from grpcio-tools) and read the descriptor set it writes.

No system protoc: ``python -m grpc_tools.protoc`` with the well-known
``google/protobuf/*.proto`` files bundled in the grpc_tools package on the
include path. The custom ``secinfra.v1.rpc`` method option is read through a
descriptor pool built from the descriptor set itself, so nothing is generated
into the source tree.
"""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message as ProtoMessage

from .errors import CodegenError

RPC_OPTION = "secinfra.v1.rpc"


def bundled_include_dir() -> Path:
    """The directory holding grpc_tools' copy of google/protobuf/*.proto."""
    return Path(str(importlib.resources.files("grpc_tools") / "_proto"))


@dataclass(frozen=True)
class DescriptorSet:
    """Parsed protoc output plus a reader for the rpc option."""

    files: tuple[descriptor_pb2.FileDescriptorProto, ...]
    inputs: tuple[str, ...]  # the files named on the command line
    _pool: Any
    _method_options: Any
    _rpc_extension: Any

    def rpc_option(self, method: descriptor_pb2.MethodDescriptorProto) -> Any | None:
        """The method's ``secinfra.v1.rpc`` option message, or None if unset."""
        if self._rpc_extension is None:
            return None
        opts = self._method_options.FromString(method.options.SerializeToString())
        if not opts.HasExtension(self._rpc_extension):
            return None
        return opts.Extensions[self._rpc_extension]


def run_protoc(inputs: Sequence[str], include_dirs: Sequence[Path]) -> DescriptorSet:
    """Compile ``inputs`` (paths relative to an include dir) into a descriptor set."""
    if not inputs:
        raise CodegenError("no .proto files to compile")
    with tempfile.TemporaryDirectory(prefix="secinfra-codegen-") as tmp:
        out = Path(tmp) / "descriptors.pb"
        cmd = [sys.executable, "-m", "grpc_tools.protoc"]
        cmd += [f"--proto_path={d}" for d in include_dirs]
        cmd += [f"--proto_path={bundled_include_dir()}"]
        cmd += ["--include_source_info", "--include_imports"]
        cmd += [f"--descriptor_set_out={out}", *inputs]
        # Fixed argv (no shell): this interpreter, protoc and the given proto paths.
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise CodegenError(f"protoc failed:\n{detail}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return _load(fds, tuple(inputs))


def _load(fds: descriptor_pb2.FileDescriptorSet, inputs: tuple[str, ...]) -> DescriptorSet:
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    ext: Any = None
    method_options: type[ProtoMessage] | None = None
    try:
        ext = pool.FindExtensionByName(RPC_OPTION)
    except KeyError:
        pass  # no file imports options.proto: every RPC lacks the option
    else:
        options_desc = pool.FindMessageTypeByName("google.protobuf.MethodOptions")
        method_options = message_factory.GetMessageClass(options_desc)
    return DescriptorSet(
        files=tuple(fds.file),
        inputs=inputs,
        _pool=pool,
        _method_options=method_options,
        _rpc_extension=ext,
    )
