"""Request data for the zero-code command: ``-d JSON`` or ``-D file`` (one JSON document, or JSON lines cycled).

Substitutions, written ``{{name}}`` anywhere in the JSON text, are filled in for every request:

- ``{{seq}}``: the request's number within its user, from 0;
- ``{{user}}``: the user's number within its process, from 0;
- ``{{uuid}}``: a random UUID (``uuid4``);
- ``{{now}}``: the Unix time in milliseconds.

Data without substitutions is parsed once and the same value sent every time.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SUBSTITUTIONS", "DataError", "RequestData", "Template"]

#: The names ``{{name}}`` may use.
SUBSTITUTIONS = ("seq", "user", "uuid", "now")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_user_numbers = itertools.count()


class DataError(ValueError):
    """Request data that cannot work; the message names the source (``-d``, or ``file:line``)."""


@dataclass(frozen=True)
class Template:
    """One JSON text with its substitutions; ``where`` names it in errors (``-d``, ``data.jsonl:3``)."""

    text: str
    where: str

    def __post_init__(self) -> None:
        unknown = sorted({name for name in _PLACEHOLDER.findall(self.text) if name not in SUBSTITUTIONS})
        if unknown:
            known = ", ".join(f"{{{{{name}}}}}" for name in SUBSTITUTIONS)
            raise DataError(f"{self.where}: unknown substitution {{{{{unknown[0]}}}}} (known: {known})")

    @property
    def constant(self) -> bool:
        return _PLACEHOLDER.search(self.text) is None

    def render(self, seq: int, user: int) -> Any:
        """The JSON value for one request."""
        values = {"seq": str(seq), "user": str(user)}

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "uuid":
                return str(uuid.uuid4())
            if name == "now":
                return str(time.time_ns() // 1_000_000)
            return values[name]

        return json.loads(_PLACEHOLDER.sub(fill, self.text))

    def sample(self) -> Any:
        """The value with sample substitutions, or DataError naming where the JSON is bad."""
        try:
            return self.render(0, 0)
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.where}: bad JSON: {exc.msg} at column {exc.colno}") from None


class RequestData:
    """The messages a run sends, cycled; :meth:`for_user` gives each user its own numbered stream of them."""

    def __init__(self, templates: list[Template]) -> None:
        if not templates:
            raise DataError("no request data: the file has no JSON")
        self.templates = templates

    @classmethod
    def from_text(cls, text: str, where: str = "-d") -> RequestData:
        """From ``-d``: one JSON document."""
        return cls([Template(text, where)])

    @classmethod
    def from_file(cls, path: str) -> RequestData:
        """From ``-D``: the whole file as one JSON document, or else one JSON document per non-empty line."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DataError(f"-D {path}: cannot read: {reason}") from None
        whole = Template(text, path)
        try:
            whole.sample()
        except DataError:
            pass
        else:
            return cls([whole])
        lines = [Template(line, f"{path}:{number}") for number, line in enumerate(text.splitlines(), 1) if line.strip()]
        return cls(lines)

    def check(self, check: Callable[[Any], None]) -> None:
        """Run ``check`` on every message (with sample substitutions); DataError naming the one that fails."""
        for template in self.templates:
            value = template.sample()
            try:
                check(value)
            except ValueError as exc:
                raise DataError(f"{template.where}: {' '.join(str(exc).split())}") from None

    def for_user(self, convert: Callable[[Any], Any] = lambda value: value) -> Iterator[Any]:
        """Endless values for one user: the templates cycled, ``{{seq}}`` counting, ``{{user}}`` this user's number.

        Each value goes through ``convert`` (e.g. JSON to a protobuf message); once only for data without
        substitutions, which is the same value every time.
        """
        user = next(_user_numbers)
        constants = {id(t): convert(t.sample()) for t in self.templates if t.constant}
        for seq, template in enumerate(itertools.cycle(self.templates)):
            yield constants[id(template)] if template.constant else convert(template.render(seq, user))
