"""Build the dashboard map's geometry from Natural Earth, as redistributed on npm.

Run once by a developer, never at run time (the output is committed inside the package):

    npm pack world-atlas@2.0.2 && mkdir -p atlas && tar xzf world-atlas-2.0.2.tgz -C atlas
    .venv/bin/python scripts/extract_sco_geometry.py atlas/package/countries-50m.json \
        src/sco_settle/server/dashboard/geo/countries.json

Input: ``countries-50m.json`` of ``world-atlas`` 2.0.2 (Natural Earth 1:50m admin-0 countries,
version 4.1.0, as TopoJSON; Natural Earth is public domain, world-atlas is ISC-licensed); ISO
3166 numeric ids are turned into alpha-2 codes with ``pycountry`` (a dependency already).

Output: every country with land in the map's box (24..192 E, 2 S..78 N; a ring crossing the
antimeridian continues past 180 E, so that Russia's Chukotka joins the mainland), its rings
simplified (Douglas-Peucker, 0.1 degree) and rounded to 0.1 degree, keyed by ISO alpha-2, with
a representative point (the area centroid of its largest ring). SCO status is not in the file:
the dashboard takes it from the network's reference data at run time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pycountry

LON_MIN, LON_MAX, LAT_MIN, LAT_MAX = 24.0, 192.0, -2.0, 78.0
WRAP_BELOW = -150.0  # longitudes west of this are shifted by 360 (Chukotka lies past 180 E)
TOLERANCE_DEGREES = 0.1
Point = tuple[float, float]


def decode_arcs(topology: dict) -> list[list[Point]]:
    """TopoJSON's quantized, delta-encoded arcs as absolute (lon, lat) points."""
    scale_x, scale_y = topology["transform"]["scale"]
    shift_x, shift_y = topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * scale_x + shift_x, y * scale_y + shift_y))
        arcs.append(points)
    return arcs


def ring_of(indexes: list[int], arcs: list[list[Point]]) -> list[Point]:
    ring: list[Point] = []
    for index in indexes:
        points = arcs[index] if index >= 0 else arcs[~index][::-1]
        ring.extend(points if not ring else points[1:])
    return unwrap(ring)


def unwrap(ring: list[Point]) -> list[Point]:
    """A ring that crosses the antimeridian (Russia's mainland with Chukotka) continues past
    180 E; a ring wholly in the far west (Alaska's Aleutians) moves by 360; others stay."""
    lons = [x for x, _ in ring]
    if min(lons) < WRAP_BELOW and (max(lons) > -WRAP_BELOW or max(lons) < WRAP_BELOW):
        return [(x + 360 if x < 0 else x, y) for x, y in ring]
    return ring


def simplify(points: list[Point], tolerance: float) -> list[Point]:
    """Douglas-Peucker, iterative (rings can be long)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (x1, y1), (x2, y2) = points[first], points[last]
        length = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        best, best_at = 0.0, -1
        for i in range(first + 1, last):
            x0, y0 = points[i]
            if length == 0:
                distance = ((x0 - x1) ** 2 + (y0 - y1) ** 2) ** 0.5
            else:
                distance = abs((x2 - x1) * (y1 - y0) - (x1 - x0) * (y2 - y1)) / length
            if distance > best:
                best, best_at = distance, i
        if best > tolerance:
            keep[best_at] = True
            stack += [(first, best_at), (best_at, last)]
    return [p for p, kept in zip(points, keep, strict=True) if kept]


def area_and_centroid(ring: list[Point]) -> tuple[float, Point]:
    area = cx = cy = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        cross = x1 * y2 - x2 * y1
        area += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    if area == 0:
        return 0.0, ring[0]
    return abs(area / 2), (cx / (3 * area), cy / (3 * area))


def in_box(ring: list[Point]) -> bool:
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return (
        max(lons) >= LON_MIN
        and min(lons) <= LON_MAX
        and max(lats) >= LAT_MIN
        and (min(lats) <= LAT_MAX)
    )


def country_rings(geometry: dict, arcs: list[list[Point]]) -> list[list[Point]]:
    polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
    return [ring_of(indexes, arcs) for polygon in polygons for indexes in polygon]


def main(atlas_path: str, out_path: str) -> None:
    topology = json.loads(Path(atlas_path).read_text())
    alpha_2 = {c.numeric: c.alpha_2 for c in pycountry.countries}
    arcs = decode_arcs(topology)
    countries = {}
    for geometry in topology["objects"]["countries"]["geometries"]:
        code = alpha_2.get(geometry.get("id", ""))
        if code is None or "arcs" not in geometry:
            continue
        rings = [ring for ring in country_rings(geometry, arcs) if in_box(ring)]
        if not rings:
            continue
        largest = max(rings, key=lambda ring: area_and_centroid(ring)[0])
        kept = [simplify(ring, TOLERANCE_DEGREES) for ring in rings]
        kept = [ring for ring in kept if len(ring) >= 4] or [largest]
        point = area_and_centroid(largest)[1]
        countries[code] = {
            "name": geometry["properties"]["name"],
            "point": [round(point[0], 1), round(point[1], 1)],
            "rings": [[[round(x, 1), round(y, 1)] for x, y in ring] for ring in kept],
        }
    document = {
        "source": "Natural Earth 1:50m admin-0 countries 4.1.0 (public domain), from the npm"
        " package world-atlas 2.0.2 (ISC), ISO 3166 codes by pycountry; extracted by"
        " scripts/extract_sco_geometry.py",
        "box": [LON_MIN, LAT_MIN, LON_MAX, LAT_MAX],
        "countries": dict(sorted(countries.items())),
    }
    Path(out_path).write_text(json.dumps(document, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
