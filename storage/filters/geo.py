"""Geo conditions: ``geo_bounding_box``, ``geo_radius`` and ``geo_polygon``.

Each compiles to a predicate on one payload value, which holds only for a geo point
(an object with numeric ``lon`` and ``lat``); the field condition applies it to every
value the key reaches.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

from storage.filters.json_body import (check_fields, expect_object, format_error, invalid_type, require,
                               validation_error)

_EARTH_RADIUS_M = 6371008.8  # mean Earth radius (IUGG), as the server's haversine
_FLOAT_MAX = sys.float_info.max


def _is_number(v: Any) -> bool:
    """A finite JSON number usable as a float (bool is not a number in a payload)."""
    t = type(v)
    if t is float:
        return math.isfinite(v)
    # an int beyond the float range would overflow the geometry, so it is no number here
    return t is int and -_FLOAT_MAX <= v <= _FLOAT_MAX


def _geo_point(raw: Any, where: str) -> tuple[float, float]:
    raw = expect_object(raw, where, "struct GeoPoint")
    check_fields(raw, ("lon", "lat"), where)
    lon, lat = require(raw, "lon", where), require(raw, "lat", where)
    if not (_is_number(lon) and _is_number(lat)):
        raise format_error(where, "`lon` and `lat` must be numbers")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise format_error(where, f"Wrong format of GeoPoint payload: expected `lat` = {lat} "
                                  f"within [-90;90] and `lon` = {lon} within [-180;180]")
    return float(lon), float(lat)


def parse_geo_point(raw: Any, where: str) -> tuple[float, float]:
    """(lon, lat) of a GeoPoint in a request, validated as a filter's."""
    return _geo_point(raw, where)


def geo_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine), as the server computes it."""
    lon1, lat1, lon2, lat2 = map(math.radians, (lon1, lat1, lon2, lat2))
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return _EARTH_RADIUS_M * 2 * math.asin(math.sqrt(a))


def _payload_geo(x: Any) -> tuple[float, float] | None:
    """(lon, lat) of a payload value that is a geo point, else None."""
    if type(x) is not dict:
        return None
    lon, lat = x.get("lon"), x.get("lat")
    if _is_number(lon) and _is_number(lat):
        return lon, lat
    return None


def geo_bounding_box(raw: Any, where: str) -> Callable[[Any], bool]:
    raw = expect_object(raw, where, "struct GeoBoundingBox")
    check_fields(raw, ("top_left", "bottom_right"), where)
    left, top = _geo_point(require(raw, "top_left", where), f"{where}.top_left")
    right, bottom = _geo_point(require(raw, "bottom_right", where), f"{where}.bottom_right")
    crosses_antimeridian = left > right

    def pred(x):
        point = _payload_geo(x)
        if point is None:
            return False
        lon, lat = point
        if not bottom < lat < top:
            return False
        if crosses_antimeridian:
            return lon > left or lon < right
        return left < lon < right

    return pred


def geo_radius(raw: Any, where: str) -> Callable[[Any], bool]:
    raw = expect_object(raw, where, "struct GeoRadius")
    check_fields(raw, ("center", "radius"), where)
    c_lon, c_lat = _geo_point(require(raw, "center", where), f"{where}.center")
    radius = require(raw, "radius", where)
    if not _is_number(radius):
        raise invalid_type(f"{where}.radius", radius, "a number")
    if radius <= 0:
        return lambda x: False  # a distance is never below zero
    lon2, lat2 = math.radians(c_lon), math.radians(c_lat)
    cos_lat2 = math.cos(lat2)
    sin, cos, asin, sqrt, radians = math.sin, math.cos, math.asin, math.sqrt, math.radians
    # A great-circle distance is at least R * |latitude difference|: points farther
    # than that in latitude are rejected without trigonometry (the margin keeps
    # rounding from rejecting a point the exact formula accepts).
    lat_reach = math.degrees(radius / _EARTH_RADIUS_M) * (1 + 1e-9) + 1e-9

    def pred(x):
        point = _payload_geo(x)
        if point is None or abs(point[1] - c_lat) > lat_reach:
            return False
        lon1, lat1 = radians(point[0]), radians(point[1])
        # haversine: great-circle distance in metres
        a = sin((lat2 - lat1) / 2) ** 2 + cos(lat1) * cos_lat2 * sin((lon2 - lon1) / 2) ** 2
        return _EARTH_RADIUS_M * (2 * asin(sqrt(a))) < radius

    return pred


def geo_polygon(raw: Any, where: str) -> Callable[[Any], bool]:
    raw = expect_object(raw, where, "struct GeoPolygon")
    check_fields(raw, ("exterior", "interiors"), where)
    exterior = _geo_ring(require(raw, "exterior", where), f"{where}.exterior")
    interiors_raw = raw.get("interiors")
    if interiors_raw is None:
        interiors_raw = []
    if not isinstance(interiors_raw, list):
        raise invalid_type(f"{where}.interiors", interiors_raw, "a sequence")
    interiors = [_geo_ring(r, f"{where}.interiors[{i}]") for i, r in enumerate(interiors_raw)]
    lons = [p[0] for p in exterior]
    lats = [p[1] for p in exterior]
    min_lon, max_lon, min_lat, max_lat = min(lons), max(lons), min(lats), max(lats)

    def pred(x):
        point = _payload_geo(x)
        if point is None:
            return False
        lon, lat = point
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            return False  # cheap reject before the ring walks
        # Boundaries belong to no polygon: a point on the exterior is outside, a point
        # on a hole's edge is in the hole.
        if _ring_position(exterior, lon, lat) <= 0:
            return False
        for hole in interiors:
            if _ring_position(hole, lon, lat) >= 0:
                return False
        return True

    return pred


def _geo_ring(raw: Any, where: str) -> tuple[tuple[float, float], ...]:
    raw = expect_object(raw, where, "struct GeoLineString")
    check_fields(raw, ("points",), where)
    points = require(raw, "points", where)
    if not isinstance(points, list):
        raise invalid_type(f"{where}.points", points, "a sequence")
    ring = tuple(_geo_point(p, f"{where}.points[{i}]") for i, p in enumerate(points))
    # the server's validator: a closed line of at least 4 points (422)
    if len(ring) < 4:
        raise validation_error(f"{where}.points", f"polygon invalid, the size must be at least 4, got {len(ring)}")
    if ring[0] != ring[-1]:
        raise validation_error(f"{where}.points", "polygon invalid, the first and the last points "
                                                  "should be same to form a closed line")
    return ring


def _ring_position(ring: tuple[tuple[float, float], ...], x: float, y: float) -> int:
    """1 inside, 0 on the boundary, -1 outside (even-odd ray casting along +x)."""
    inside = False
    x_prev, y_prev = ring[-1]
    for x_cur, y_cur in ring:
        # on this edge: collinear and within its bounding box
        if ((x_cur - x) * (x_prev - x) <= 0 and (y_cur - y) * (y_prev - y) <= 0
                and (x_prev - x_cur) * (y - y_cur) == (y_prev - y_cur) * (x - x_cur)):
            return 0
        if (y_cur > y) != (y_prev > y):
            if x < (x_prev - x_cur) * (y - y_cur) / (y_prev - y_cur) + x_cur:
                inside = not inside
        x_prev, y_prev = x_cur, y_cur
    return 1 if inside else -1
