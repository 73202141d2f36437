"""Score boosting (``query: {"formula": EXPR, "defaults": {...}}``): the candidates of
the prefetches rescored by an expression, as Qdrant evaluates it (qdrant-client's
local mode is the executable reference):

- a number is a constant; a string is a variable: ``$score`` / ``$score[i]`` is the
  point's score in prefetch ``i`` (its default, else 0, if that prefetch did not find
  it), anything else a payload key whose single number is read (else its default);
- a condition (any filter condition, or a whole filter) is 1 if the point matches it,
  else 0;
- ``sum``, ``mult``, ``max``, ``min``, ``neg``, ``abs``, ``div`` (``by_zero_default``),
  ``sqrt``, ``pow``, ``exp``, ``log10``, ``ln``, ``acosh``;
- ``geo_distance`` (metres from ``origin`` to the geo point at ``to``), ``datetime``
  (a constant) and ``datetime_key`` (a payload value), both as seconds since the epoch;
- ``lin_decay``, ``exp_decay``, ``gauss_decay`` of ``|x - target|`` with ``scale`` and
  ``midpoint`` (the value at distance ``scale``).

``mult`` stops at its first zero factor and ``div`` at a zero numerator, so the rest
is never evaluated (nor can fail). A non-finite result is an error, as in Qdrant.
Everything that can be refused without a point is refused when parsing.

The expression compiles once to closures ``f(point, scores) -> float``; ``scores`` is
one {point id: score} per prefetch.
"""
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from storage.errors import BadRequest, only_fields
from storage.filters import compile_filter, parse_datetime
from storage.filters.geo import geo_distance, parse_geo_point
from storage.ids import encode_id
from storage.paths import compile_getter, leaf_values, parse_path

DEFAULT_SCORE = 0.0
DEFAULT_TARGET = 0.0
DEFAULT_MIDPOINT = 0.5
DEFAULT_SCALE = 1.0
# Qdrant's FormulaQuery and the parameter objects of its expressions
FIELDS = ("formula", "defaults")
DECAY_FIELDS = ("x", "target", "scale", "midpoint")
DIV_FIELDS = ("left", "right", "by_zero_default")
POW_FIELDS = ("base", "exponent")
GEO_FIELDS = ("origin", "to")

Expr = Callable  # (point, scores) -> float; point is a storage.collection Point with ``names`` set


@dataclass
class Formula:
    expression: Expr

    def rescore(self, col, sources: list, limit: int) -> list:
        """[(id, float32 score)] best first (ties in the prefetches' order), ``limit`` long."""
        scores = [{hit["id"]: hit["score"] for hit in source} for source in sources]
        ids = dict.fromkeys(hit["id"] for source in sources for hit in source)
        names = col.vector_names_view()
        out = []
        for pid in ids:
            point = col.points[encode_id(pid)]
            names.key = point.key
            value = self.expression(_Point(point, names), scores)
            with np.errstate(over="ignore", invalid="ignore"):
                f32 = np.float32(value)
            if not np.isfinite(f32):
                raise _non_finite(f"{value} as f32 = {f32}")
            out.append((pid, float(f32)))
        out.sort(key=lambda item: item[1], reverse=True)
        return out[:limit]


class _Point:
    __slots__ = ("id", "payload", "names")

    def __init__(self, point, names):
        self.id, self.payload, self.names = point.id, point.payload or {}, names


def _bad(message: str) -> BadRequest:
    return BadRequest(f"Bad request: {message}")


def _non_finite(expression: str) -> BadRequest:
    return _bad(f"The expression {expression} produced a non-finite number")


def parse(raw, defaults, where: str = "") -> Formula:
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        raise BadRequest(f"Format error in JSON body: {where}query.defaults must be an object")
    parsed = {}
    for key, value in defaults.items():
        variable = _variable(key)
        parsed[("score", variable) if isinstance(variable, int) else key] = value
    return Formula(_compile(raw, parsed, f"{where}query.formula"))


def _variable(text: str):
    """A score index (int) or a payload key (str)."""
    if not text.startswith("$score"):
        parse_path(text)  # refuse a malformed key now
        return text
    rest = text[len("$score"):]
    if rest == "":
        return 0
    if rest.startswith("[") and rest.endswith("]") and rest[1:-1].isascii() and rest[1:-1].isdigit():
        return int(rest[1:-1])
    raise _bad(f"Invalid score pattern: {text}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_UNARY = {"neg", "abs", "sqrt", "exp", "log10", "ln", "acosh"}
_LISTS = {"sum", "mult", "max", "min"}
_DECAYS = {"lin_decay", "exp_decay", "gauss_decay"}
_SPECIAL = {"div", "pow", "geo_distance", "datetime", "datetime_key"}


def _compile(raw, defaults: dict, where: str) -> Expr:
    if _number(raw):
        value = float(raw)
        return lambda point, scores: value
    if isinstance(raw, str):
        return _compile_variable(raw, defaults)
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where}: expected a number, a variable, a condition or "
                         "an expression object")
    op = next(iter(raw), None)
    if len(raw) == 1 and op in _UNARY | _LISTS | _DECAYS | _SPECIAL:
        arg = raw[op]
        if op in _LISTS:
            return _compile_list(op, arg, defaults, f"{where}.{op}")
        if op in _UNARY:
            return _compile_unary(op, _compile(arg, defaults, f"{where}.{op}"))
        if op in _DECAYS:
            return _compile_decay(op, arg, defaults, f"{where}.{op}")
        return _SPECIALS[op](arg, defaults, f"{where}.{op}")
    flt = compile_filter({"must": [raw]}, where)
    return lambda point, scores: 1.0 if flt.matches(point.id, point.payload, point.names) else 0.0


def _compile_variable(text: str, defaults: dict) -> Expr:
    variable = _variable(text)
    if isinstance(variable, int):
        default = defaults.get(("score", variable))

        def score(point, scores):
            if variable < len(scores):
                found = scores[variable].get(point.id)
                if found is not None:
                    return found
            return default if default is not None else DEFAULT_SCORE
        return score
    getter = _value_reader(variable, defaults)

    def payload_number(point, scores):
        value = getter(point)
        if _number(value):
            return value
        raise _bad(f"Expected number value for {variable} in the payload and/or in the formula defaults. "
                   "Error: Value is not a number")
    return payload_number


def _value_reader(key: str, defaults: dict):
    """The value at ``key`` (one value if there is one, else the list), else its default."""
    getter = compile_getter(parse_path(key))

    def read(point):
        value = leaf_values(getter(point.payload))
        if not value:
            value = defaults.get(key)
            if isinstance(value, list) and not value:
                value = None
        if isinstance(value, list) and len(value) == 1:
            return value[0]
        if value is None:
            raise _bad(f"No value found for {key} in the payload nor the formula defaults")
        return value
    return read


def _compile_list(op: str, raw, defaults: dict, where: str) -> Expr:
    if not isinstance(raw, list):
        raise BadRequest(f"Format error in JSON body: {where} must be a list of expressions")
    if op in ("max", "min") and not raw:
        raise _bad(f"`{op}` needs at least one operand")
    parts = [_compile(item, defaults, f"{where}[{i}]") for i, item in enumerate(raw)]
    if op == "sum":
        return lambda point, scores: sum(part(point, scores) for part in parts)
    if op == "max":
        return lambda point, scores: _fold(max, -math.inf, parts, point, scores)
    if op == "min":
        return lambda point, scores: _fold(min, math.inf, parts, point, scores)

    def mult(point, scores):
        product = 1.0
        for part in parts:
            factor = part(point, scores)
            if factor == 0.0:
                return factor
            product *= factor
        return product
    return mult


def _fold(pick, start: float, parts: list, point, scores) -> float:
    value = start
    for part in parts:
        value = pick(value, part(point, scores))
    return value


def _compile_unary(op: str, inner: Expr) -> Expr:
    def neg(point, scores):
        return -inner(point, scores)

    def absolute(point, scores):
        return abs(inner(point, scores))

    def sqrt(point, scores):
        value = inner(point, scores)
        if value >= 0:
            return math.sqrt(value)
        raise _non_finite(f"√{value}")

    def exp(point, scores):
        value = inner(point, scores)
        try:
            return math.exp(value)
        except OverflowError:
            raise _non_finite(f"exp({value})") from None

    def logarithm(fn, name):
        def log(point, scores):
            value = inner(point, scores)
            if value > 0:
                return fn(value)
            raise _non_finite(f"{name}({value})")
        return log

    def acosh(point, scores):
        value = inner(point, scores)
        if value >= 1:
            result = math.acosh(value)
            if math.isfinite(result):
                return result
        raise _non_finite(f"acosh({value})")

    return {"neg": neg, "abs": absolute, "sqrt": sqrt, "exp": exp, "log10": logarithm(math.log10, "log10"),
            "ln": logarithm(math.log, "ln"), "acosh": acosh}[op]


def _params(raw, where: str, required: tuple, optional: tuple) -> dict:
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be {{{', '.join(required + optional)}}}")
    only_fields(raw, required + optional, where)
    for field in required:
        if raw.get(field) is None:
            raise BadRequest(f"Format error in JSON body: {where}: missing field `{field}`")
    return raw


def _compile_div(raw, defaults: dict, where: str) -> Expr:
    raw = _params(raw, where, DIV_FIELDS[:2], DIV_FIELDS[2:])
    left, right = _compile(raw["left"], defaults, f"{where}.left"), _compile(raw["right"], defaults, f"{where}.right")
    fallback = raw.get("by_zero_default")
    if fallback is not None and not _number(fallback):
        raise BadRequest(f"Format error in JSON body: {where}.by_zero_default must be a number")

    def div(point, scores):
        numerator = left(point, scores)
        if numerator == 0.0:
            return numerator
        denominator = right(point, scores)
        if denominator == 0.0:
            if fallback is not None:
                return float(fallback)
            raise _non_finite(f"{numerator}/{denominator}")
        result = numerator / denominator
        if math.isfinite(result):
            return result
        raise _non_finite(f"{numerator}/{denominator}")
    return div


def _compile_pow(raw, defaults: dict, where: str) -> Expr:
    raw = _params(raw, where, POW_FIELDS, ())
    base, exponent = _compile(raw["base"], defaults, f"{where}.base"), _compile(raw["exponent"], defaults,
                                                                                  f"{where}.exponent")

    def power(point, scores):
        b, e = base(point, scores), exponent(point, scores)
        try:
            result = math.pow(b, e)
        except (OverflowError, ValueError):
            result = math.nan
        if math.isfinite(result):
            return result
        raise _non_finite(f"{b}^{e}")
    return power


def _compile_geo_distance(raw, defaults: dict, where: str) -> Expr:
    raw = _params(raw, where, GEO_FIELDS, ())
    lon, lat = parse_geo_point(raw["origin"], f"{where}.origin")
    if not isinstance(raw["to"], str):
        raise BadRequest(f"Format error in JSON body: {where}.to must be a payload key")
    read = _value_reader(raw["to"], defaults)

    def distance(point, scores):
        value = read(point)
        if isinstance(value, dict) and _number(value.get("lon")) and _number(value.get("lat")):
            return geo_distance(lon, lat, value["lon"], value["lat"])
        raise _bad(f"Expected geo point for {raw['to']} in the payload and/or in the formula defaults.")
    return distance


def _seconds(text) -> float | None:
    micros = parse_datetime(text)
    return None if micros is None else micros / 1e6


def _compile_datetime(raw, defaults: dict, where: str) -> Expr:
    value = _seconds(raw)
    if value is None:
        raise _bad(f"Expected datetime in supported format for {raw}")
    return lambda point, scores: value


def _compile_datetime_key(raw, defaults: dict, where: str) -> Expr:
    if not isinstance(raw, str):
        raise BadRequest(f"Format error in JSON body: {where} must be a payload key")
    read = _value_reader(raw, defaults)

    def datetime_key(point, scores):
        value = _seconds(read(point))
        if value is None:
            raise _bad(f"Expected datetime for {raw} in the payload and/or in the formula defaults.")
        return value
    return datetime_key


def _compile_decay(op: str, raw, defaults: dict, where: str) -> Expr:
    raw = _params(raw, where, DECAY_FIELDS[:1], DECAY_FIELDS[1:])
    x = _compile(raw["x"], defaults, f"{where}.x")
    target = None if raw.get("target") is None else _compile(raw["target"], defaults, f"{where}.target")
    midpoint, scale = raw.get("midpoint"), raw.get("scale")
    for name, value in (("midpoint", midpoint), ("scale", scale)):
        if value is not None and not _number(value):
            raise BadRequest(f"Format error in JSON body: {where}.{name} must be a number")
    midpoint = DEFAULT_MIDPOINT if midpoint is None else float(midpoint)
    scale = DEFAULT_SCALE if scale is None else float(scale)
    if op == "lin_decay":
        if not 0.0 <= midpoint <= 1.0:
            raise _bad(f"Linear decay midpoint should be in the range [0.0, 1.0], got {midpoint}")
    elif not 0.0 < midpoint < 1.0:
        raise _bad(f"Decay midpoint should be in the range (0.0, 1.0), got {midpoint}")
    if scale <= 0.0:
        raise _bad(f"Scale must be non-zero positive, got {scale}")

    def distance(point, scores):
        return x(point, scores) - (DEFAULT_TARGET if target is None else target(point, scores))

    if op == "lin_decay":
        lam = (1.0 - midpoint) / scale
        return lambda point, scores: max(0.0, -lam * abs(distance(point, scores)) + 1.0)
    if op == "exp_decay":
        lam = math.log(midpoint) / scale
        return lambda point, scores: math.exp(lam * abs(distance(point, scores)))
    lam = math.log(midpoint) / (scale * scale)

    def gauss(point, scores):
        d = distance(point, scores)
        return math.exp(lam * d * d)
    return gauss


_SPECIALS = {"div": _compile_div, "pow": _compile_pow, "geo_distance": _compile_geo_distance,
             "datetime": _compile_datetime, "datetime_key": _compile_datetime_key}
