"""Method descriptors without generated code: from ``.proto`` files compiled at run time, or a protoset.

    catalog = proto_catalog(["kv.proto"], ["protos/"], owner="KvUser.proto_files")
    catalog.method("pkg.Kv/Get")  # a MethodDescriptor

``.proto`` files are compiled in-process by grpcio-tools' bundled protoc (no ``protoc`` binary, nothing written
to disk); the well-known types (``google/protobuf/*.proto``) are always importable. A protoset is a
``FileDescriptorSet`` as ``protoc --descriptor_set_out --include_imports`` writes it. Each distinct set of inputs
is compiled once per process and its descriptor pool shared by every user. A missing file, an import that does
not resolve or a syntax error is a :class:`~locust_ext.grpc.errors.GrpcConfigError` naming ``file:line:column``.
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError

from locust_ext.grpc.errors import GrpcConfigError

__all__ = ["MethodCatalog", "build_catalog", "compile_protos", "proto_catalog", "read_protoset", "split_method"]

_WELL_KNOWN_PREFIX = "google/protobuf/"


def split_method(method: str) -> tuple[str, str]:
    """("pkg.Service", "Method") from ``pkg.Service/Method``, ``/pkg.Service/Method`` or ``pkg.Service.Method``."""
    text = method.strip().lstrip("/")
    service, sep, name = text.rpartition("/")
    if not sep:
        service, sep, name = text.rpartition(".")
    if not sep or not service or not name:
        raise GrpcConfigError(f"method {method!r}: expected 'package.Service/Method'")
    return service, name


class MethodCatalog:
    """A descriptor pool and the services it knows, for finding methods by name.

    ``where`` says where the descriptors came from, for error messages (``KvUser.proto_files``, "the server's
    reflection").
    """

    def __init__(self, pool: DescriptorPool, service_names: Iterable[str], where: str) -> None:
        self.pool = pool
        self._service_names = sorted(set(service_names))
        self.where = where

    def service_names(self) -> list[str]:
        """Full names of the services known, sorted."""
        return list(self._service_names)

    def service(self, name: str) -> ServiceDescriptor:
        """The service called ``name``; GrpcConfigError naming the services there are when it is unknown."""
        try:
            return self.pool.FindServiceByName(name)
        except KeyError:
            known = ", ".join(self.service_names()) or "none"
            raise GrpcConfigError(f"{self.where} does not know {name}; services: {known}") from None

    def method(self, method: str) -> MethodDescriptor:
        """The descriptor of ``pkg.Service/Method``; GrpcConfigError naming what is there when it is unknown."""
        service_name, method_name = split_method(method)
        try:
            service = self.service(service_name)
        except GrpcConfigError as exc:
            raise GrpcConfigError(f"method {method!r}: {exc}") from None
        descriptor = service.methods_by_name.get(method_name)
        if descriptor is None:
            methods = ", ".join(sorted(service.methods_by_name)) or "none"
            raise GrpcConfigError(f"method {method!r}: {service_name} has no method {method_name}; methods: {methods}")
        return descriptor


def _well_known_include() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def _serialized_files(generated: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """The serialized FileDescriptorProtos inside protoc's generated Python, read from its source text, not run.

    Every ``*_pb2.py`` protoc writes holds ``...AddSerializedFile(b'<FileDescriptorProto>')``; grpcio-tools
    returns that source (dependencies first), so the descriptors come out without executing or writing code.
    """
    found: list[bytes] = []
    for _name, code in generated:
        for node in ast.walk(ast.parse(code)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, bytes)
            ):
                found.append(node.args[0].value)
    return found


def _virtual_name(path: str, import_paths: Sequence[str], owner: str) -> tuple[str, list[str]]:
    """The name protoc knows ``path`` by (relative to an import path) and the import paths to compile it with.

    Like protoc and ghz: a file under an import path is named relative to it; a file elsewhere brings its own
    directory as an extra import path; a name that is not a file is looked up in the import paths, then among the
    well-known types.
    """
    roots = list(import_paths)
    real = Path(path)
    if real.is_file():
        resolved = real.resolve()
        for root in roots:
            try:
                return resolved.relative_to(Path(root).resolve()).as_posix(), roots
            except ValueError:
                continue
        return resolved.name, [*roots, str(real.parent)]
    for root in [*roots, _well_known_include()]:
        if (Path(root) / path).is_file():
            return Path(path).as_posix(), roots
    looked = ", ".join([".", *roots]) if not real.is_absolute() else str(real.parent)
    raise GrpcConfigError(f"{owner}: {path}: file not found (looked in {looked})")


def _display_path(name: str, import_paths: Sequence[str]) -> str:
    """Where a file protoc names relative to the import paths is on disk (as given), for error messages."""
    for root in import_paths:
        candidate = Path(root) / name
        if candidate.is_file():
            return os.path.normpath(str(candidate))
    return name


def compile_protos(
    proto_files: Sequence[str], import_paths: Sequence[str] = (), *, owner: str = "proto_files"
) -> list[descriptor_pb2.FileDescriptorProto]:
    """Compile ``proto_files`` (and their imports) in-process; FileDescriptorProtos, dependencies first.

    Raises GrpcConfigError: ``<owner>: <file>:<line>:<column>: <protoc's message>`` for the first error.
    """
    for root in import_paths:
        if not Path(root).is_dir():
            raise GrpcConfigError(f"{owner}: import path {root!r} is not a directory")
    from grpc_tools import _protoc_compiler

    well_known = _well_known_include()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for path in proto_files:
        name, roots = _virtual_name(path, import_paths, owner)
        search = [*roots, well_known]
        try:
            generated = _protoc_compiler.get_protos(name.encode(), [root.encode() for root in search])
        except _protoc_compiler.ProtocErrors as exc:
            raise GrpcConfigError(f"{owner}: {_first_error(exc.errors(), search)}") from None
        for serialized in _serialized_files(generated):
            proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
            files.setdefault(proto.name, proto)
    return list(files.values())


def _first_error(errors: Sequence[Any], import_paths: Sequence[str]) -> str:
    """One line for protoc's errors (``ProtocError``: filename, 0-based line and column, message, as bytes): the
    first with a line number, i.e. the import or the syntax error rather than the file it could not find."""

    def text(value: object) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    located = [error for error in errors if error.line >= 0]
    if not (located or errors):
        return "protoc failed without a message"
    error = (located or errors)[0]
    where = _display_path(text(error.filename), import_paths)
    if error.line < 0:
        return f"{where}: {text(error.message)}"
    return f"{where}:{error.line + 1}:{error.column + 1}: {text(error.message)}"


def read_protoset(path: str, *, owner: str = "protoset") -> list[descriptor_pb2.FileDescriptorProto]:
    """The files of a ``FileDescriptorSet`` file, dependencies first; missing well-known imports are compiled in.

    Raises GrpcConfigError naming the file when it cannot be read, is not a descriptor set, or imports a file it
    does not contain (build it with ``--include_imports``).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GrpcConfigError(f"{owner}: {path}: cannot read: {exc.strerror or exc}") from None
    try:
        files = list(descriptor_pb2.FileDescriptorSet.FromString(data).file)
    except DecodeError as exc:
        raise GrpcConfigError(
            f"{owner}: {path}: not a FileDescriptorSet (protoc --descriptor_set_out): {exc}"
        ) from None
    if not files:
        raise GrpcConfigError(f"{owner}: {path}: not a FileDescriptorSet (protoc --descriptor_set_out): no files")
    by_name = {proto.name: proto for proto in files}
    for proto in files:
        for dependency in proto.dependency:
            if dependency in by_name:
                continue
            if not dependency.startswith(_WELL_KNOWN_PREFIX):
                raise GrpcConfigError(
                    f"{owner}: {path}: {proto.name} imports {dependency}, which the set does not contain "
                    "(build it with protoc --include_imports)"
                )
            for extra in compile_protos([dependency], owner=owner):
                by_name.setdefault(extra.name, extra)
    return _dependencies_first(by_name)


def _dependencies_first(
    by_name: dict[str, descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    ordered: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def visit(name: str) -> None:
        if name in ordered or name not in by_name:
            return
        for dependency in by_name[name].dependency:
            visit(dependency)
        ordered[name] = by_name[name]

    for name in by_name:
        visit(name)
    return list(ordered.values())


def build_catalog(files: Iterable[descriptor_pb2.FileDescriptorProto], where: str) -> MethodCatalog:
    """A catalog over ``files`` (dependencies first, each name once)."""
    pool = DescriptorPool()
    services: list[str] = []
    for proto in files:
        pool.AddSerializedFile(proto.SerializeToString())
        package = f"{proto.package}." if proto.package else ""
        services.extend(f"{package}{service.name}" for service in proto.service)
    return MethodCatalog(pool, services, where)


_catalogs: dict[tuple[tuple[str, ...], tuple[str, ...], str | None], MethodCatalog] = {}
_catalogs_lock = threading.Lock()


def proto_catalog(
    proto_files: Sequence[str], import_paths: Sequence[str] = (), protoset: str | None = None, *, owner: str
) -> MethodCatalog:
    """The catalog of ``proto_files`` (compiled with ``import_paths``) and ``protoset``, built once per process.

    ``owner`` prefixes error messages (``MyUser.proto_files``, ``--proto``). Paths are taken as given, relative
    to the working directory.
    """
    key = (tuple(proto_files), tuple(import_paths), protoset)
    with _catalogs_lock:
        catalog = _catalogs.get(key)
        if catalog is None:
            files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
            if protoset:
                for proto in read_protoset(protoset, owner=owner):
                    files.setdefault(proto.name, proto)
            for proto in compile_protos(proto_files, import_paths, owner=owner):
                files.setdefault(proto.name, proto)
            catalog = _catalogs[key] = build_catalog(_dependencies_first(files), owner)
    return catalog
