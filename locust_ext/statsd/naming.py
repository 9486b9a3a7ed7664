"""Metric names and StatsD lines for Locust request events, safe for Graphite and bounded in cardinality.

Without tags a request's type and name become path segments (``locust.requests.grpc.<name>.success``);
with tags they travel as DogStatsD ``|#k:v`` or Graphite ``;k=v`` tags on fixed metric names. Every line is
built once per (type, name) and cached, so the per-event cost is a dict lookup and one float format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from locust_ext.run_gauges import MAX_SEGMENT_LENGTH
from locust_ext.run_gauges import gauge_segment as sanitize_segment

__all__ = [
    "MAX_ERROR_CLASSES",
    "MAX_SEGMENT_LENGTH",
    "OTHER_ERROR_CLASS",
    "RequestLines",
    "TagStyle",
    "error_class",
    "format_number",
    "gauge_lines",
    "request_lines",
    "sanitize_segment",
    "sanitize_tag_value",
]

TagStyle = Literal["none", "dogstatsd", "graphite"]

#: Distinct error classes counted per request before the rest fall into :data:`OTHER_ERROR_CLASS`.
MAX_ERROR_CLASSES = 20
OTHER_ERROR_CLASS = "other"

# Path segments: locust_ext.run_gauges.gauge_segment (sanitize_segment here), shared with run gauges.
# Tag values may keep '.' and '/', which neither tag syntax uses, so method paths stay readable.
_NOT_TAG_VALUE = re.compile(r"[^A-Za-z0-9_./-]+")
# "UNAVAILABLE: connection refused" → UNAVAILABLE; "timeout" → timeout. After a lowercase word (the WebSocket
# user's failure words, never a gRPC status) a close code (1000-4999) right after the colon is kept:
# "disconnect: 1006 connection lost" → disconnect_1006. At most 4000 codes per word, in practice a handful.
_LEADING_WORD = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]{0,39})\s*(?::|$)")
_CLOSE_CODE = re.compile(r"\s*([a-z][a-z0-9_-]{0,39})\s*:\s*([1-4]\d{3})(?![\w.])")


def _clean(pattern: re.Pattern[str], text: str) -> str:
    cleaned = pattern.sub("_", text).strip("_")[:MAX_SEGMENT_LENGTH]
    return cleaned or "_"


def sanitize_tag_value(text: str) -> str:
    """A tag value safe in both DogStatsD and Graphite tag syntax; never empty."""
    return _clean(_NOT_TAG_VALUE, text)


def error_class(exception: object) -> str:
    """A short, groupable class for a failure: the message's leading status word, else the exception type.

    Messages follow the suite's convention ``CODE: detail``: ``UNAVAILABLE: connection refused`` is
    ``UNAVAILABLE``; a close code right after the word is kept, ``disconnect: 1006 connection lost`` is
    ``disconnect_1006``.
    """
    message = str(exception)
    coded = _CLOSE_CODE.match(message)
    if coded:
        return f"{coded.group(1)}_{coded.group(2)}"
    match = _LEADING_WORD.match(message)
    return match.group(1) if match else type(exception).__name__


def format_number(value: float) -> str:
    """A plain decimal (no exponent), at most six decimals, trailing zeros dropped."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _suffix(sample_rate: float, tags: dict[str, str], style: TagStyle) -> tuple[str, str]:
    """(text after the metric name, text after the type) for this sample rate and tag set."""
    rate = f"|@{format_number(sample_rate)}" if sample_rate < 1.0 else ""
    if not tags or style == "none":
        return "", rate
    if style == "graphite":
        return "".join(f";{key}={sanitize_tag_value(value)}" for key, value in tags.items()), rate
    return "", rate + "|#" + ",".join(f"{key}:{sanitize_tag_value(value)}" for key, value in tags.items())


@dataclass
class RequestLines:
    """Everything one (request type, name) sends, prebuilt; only the timer value changes per event."""

    timer_head: str
    timer_tail: str
    success: str
    failure: str
    prefix: str
    request_type: str
    name: str
    style: TagStyle
    sample_rate: float
    _errors: dict[str, str] = field(default_factory=dict)

    def timer(self, milliseconds: float) -> str:
        """The timer line, keeping microseconds (``0.347|ms``)."""
        return f"{self.timer_head}{milliseconds:.3f}{self.timer_tail}"

    def error(self, exception: object) -> str:
        """The counter line for this failure's class, at most :data:`MAX_ERROR_CLASSES` distinct ones."""
        kind = error_class(exception)
        line = self._errors.get(kind)
        if line is None:
            if len(self._errors) >= MAX_ERROR_CLASSES:
                kind = OTHER_ERROR_CLASS
            line = self._errors.get(kind) or self._build_error(kind)
            self._errors[kind] = line
        return line

    def _build_error(self, kind: str) -> str:
        if self.style == "none":
            path = f"{self.prefix}.errors.{sanitize_segment(self.request_type)}.{sanitize_segment(self.name)}"
            return f"{path}.{sanitize_segment(kind)}:1|c" + _suffix(self.sample_rate, {}, "none")[1]
        tags = {"request_type": self.request_type, "name": self.name, "error": kind}
        name_tail, type_tail = _suffix(self.sample_rate, tags, self.style)
        return f"{self.prefix}.errors{name_tail}:1|c{type_tail}"


def request_lines(
    prefix: str, request_type: str, name: str, style: TagStyle, sample_rate: float, group: str = "requests"
) -> RequestLines:
    """Build the lines for one (request type, name) under ``<prefix>.<group>``; ``prefix`` is already sanitised."""
    if style == "none":
        base = f"{prefix}.{group}.{sanitize_segment(request_type)}.{sanitize_segment(name)}"
        name_tail, type_tail = _suffix(sample_rate, {}, style)
    else:
        base = f"{prefix}.{group}"
        name_tail, type_tail = _suffix(sample_rate, {"request_type": request_type, "name": name}, style)
    return RequestLines(
        timer_head=f"{base}.response_time{name_tail}:",
        timer_tail=f"|ms{type_tail}",
        success=f"{base}.success{name_tail}:1|c{type_tail}",
        failure=f"{base}.failure{name_tail}:1|c{type_tail}",
        prefix=prefix,
        request_type=request_type,
        name=name,
        style=style,
        sample_rate=sample_rate,
    )


def gauge_lines(name: str, value: float) -> list[str]:
    """Gauge lines setting ``name`` to ``value``; a negative value needs a reset to 0 first (StatsD reads a
    leading sign as a delta)."""
    if value < 0:
        return [f"{name}:0|g", f"{name}:{format_number(value)}|g"]
    return [f"{name}:{format_number(value)}|g"]
