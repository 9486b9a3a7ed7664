"""The committed generated code matches protos/: regenerating it changes nothing but version stamps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

GENERATED = ["loadtest_pb2.py", "loadtest_pb2.pyi", "loadtest_pb2_grpc.py"]
# Lines that name the generator's version rather than describe the protocol.
VERSION_LINE = re.compile(
    r"Protobuf Python Version|GRPC_GENERATED_VERSION =|ValidateProtobufRuntimeVersion|^\s+\d+,\s*$"
)


def _without_version_stamps(text: str) -> list[str]:
    return [line for line in text.splitlines() if not VERSION_LINE.search(line)]


@pytest.mark.parametrize("name", GENERATED)
def test_generated_code_is_current(tmp_path: Path, name: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO_ROOT / 'protos'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(REPO_ROOT / "protos/loadtest/v1/loadtest.proto"),
        ],
        check=True,
    )
    fresh = (tmp_path / "loadtest/v1" / name).read_text()
    committed = (REPO_ROOT / "loadtest/v1" / name).read_text()
    assert _without_version_stamps(committed) == _without_version_stamps(fresh), (
        f"loadtest/v1/{name} is stale against protos/; run `make protos` and commit the result"
    )
