"""The map of SCO states and corridor flows, drawn as inline SVG on the server.

Pure: given the shipped geometry (``geo/countries.json``, Natural Earth; provenance in
``geo/SOURCES.md``), the states' SCO status (from the network's reference data) and the flows of
the caller's corridors, it returns SVG text. No script and no file from elsewhere is needed to see
it, and every corridor is a link (``<a>``), so the keyboard reaches and selects it like any other
link; the page also lists every corridor in a table.

Drawing rules:
- projection: equirectangular with the 40th parallel as standard (x scaled by cos 40 degrees),
  which keeps Central Asia's shapes recognisable between Egypt and the Russian Far East;
- a country's fill says its SCO status (member, partner; other states grey); states too small to
  see at this scale (Bahrain, the Maldives) get a dot at their point;
- a corridor (debtor country to creditor country) is one curve per payer currency, bent to the
  right of its direction so that the two directions of a pair stay apart, with an arrow head;
  domestic flows are rings around the country's point. Its width grows with the square root of
  its settled value *relative to the largest flow in the same currency*: values in different
  currencies are never added or compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from sco_settle.domain.participants import ScoStatus

GEOMETRY_PATH = Path(__file__).resolve().parent / "geo" / "countries.json"
SCALE = 10.0  # SVG units per degree of latitude
COS_STANDARD = math.cos(math.radians(40.0))
SMALL_STATE_UNITS = 6.0  # a state whose outline is narrower than this is also drawn as a dot
WIDTH_MIN, WIDTH_SPAN = 1.5, 9.0  # a flow's stroke width: min + span * sqrt(value / largest)
BEND = 0.22  # a curve's control point lies this share of its length to the right
BEND_STEP = 0.09  # and this much further per other currency of the same corridor
# Okabe-Ito, as the charts use (``views._figure``): distinguishable with colour-blind eyes;
# then Paul Tol's muted scheme's darker colours, so that ten currencies differ before a repeat.
CURRENCY_COLOURS = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
    "#882255", "#117733", "#999933",
)  # fmt: skip
STATUS_FILL = {"member": "#7fa8d1", "partner": "#cfe0f1", "other": "#e6e6e6"}

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class CountryShape:
    code: str  # ISO 3166 alpha-2
    name: str
    point: Point  # (lon, lat): where flows start and end
    rings: tuple[tuple[Point, ...], ...]  # (lon, lat) outlines


@dataclass(frozen=True, slots=True)
class Geometry:
    box: tuple[float, float, float, float]  # lon min, lat min, lon max, lat max
    countries: Mapping[str, CountryShape]
    source: str


@dataclass(frozen=True, slots=True)
class Flow:
    """The settled flow of one corridor in one payer currency (values in minor units of it)."""

    debtor_country: str
    creditor_country: str
    currency: str
    settled_value_minor: int
    label: str  # what a person reads for it: corridor, value, settled share
    href: str  # the link that selects it
    selected: bool = False

    @property
    def corridor(self) -> str:
        return f"{self.debtor_country}-{self.creditor_country}"


@cache
def load_geometry(path: Path = GEOMETRY_PATH) -> Geometry:
    document = json.loads(path.read_text(encoding="utf-8"))
    countries = {
        code: CountryShape(
            code,
            entry["name"],
            (entry["point"][0], entry["point"][1]),
            tuple(tuple((x, y) for x, y in ring) for ring in entry["rings"]),
        )
        for code, entry in document["countries"].items()
    }
    lon_min, lat_min, lon_max, lat_max = document["box"]
    return Geometry((lon_min, lat_min, lon_max, lat_max), countries, document["source"])


def project(geometry: Geometry, lon: float, lat: float) -> Point:
    lon_min, _, _, lat_max = geometry.box
    return (lon - lon_min) * SCALE * COS_STANDARD, (lat_max - lat) * SCALE


def view_box(geometry: Geometry) -> tuple[float, float]:
    lon_min, lat_min, lon_max, lat_max = geometry.box
    return (lon_max - lon_min) * SCALE * COS_STANDARD, (lat_max - lat_min) * SCALE


def render(
    geometry: Geometry,
    statuses: Mapping[str, ScoStatus],
    flows: Sequence[Flow],
    *,
    title: str,
) -> str:
    """The whole ``<svg>``: countries by status, then flows (selected ones last, on top)."""
    width, height = view_box(geometry)
    colours = currency_colours(flows)
    parts = [
        f'<svg class="map" viewBox="0 0 {width:.0f} {height:.0f}" role="group"'
        f' aria-labelledby="map-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="map-title">{escape(title)}</title>',
        '<g class="countries" aria-hidden="true">',
        *(_country(geometry, shape, statuses.get(code)) for code, shape in _drawn(geometry)),
        "</g>",
        '<g class="flows">',
        *_flows(geometry, flows, colours),
        "</g>",
        "</svg>",
    ]
    return "\n".join(parts)


def currency_colours(flows: Sequence[Flow]) -> dict[str, str]:
    """One colour per payer currency, in alphabetical order of the currencies shown."""
    codes = sorted({flow.currency for flow in flows})
    return {code: CURRENCY_COLOURS[i % len(CURRENCY_COLOURS)] for i, code in enumerate(codes)}


def status_class(status: ScoStatus | None) -> str:
    """member or partner (observers and dialogue partners, merged by the 2025 Tianjin
    declaration, are partners), else other."""
    if status is None or status is ScoStatus.NONE:
        return "other"
    return "member" if status.tier == "member" else "partner"


def _drawn(geometry: Geometry) -> list[tuple[str, CountryShape]]:
    return sorted(geometry.countries.items())


def _country(geometry: Geometry, shape: CountryShape, status: ScoStatus | None) -> str:
    kind = status_class(status)
    rings = [[project(geometry, lon, lat) for lon, lat in ring] for ring in shape.rings]
    path = " ".join(
        "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in ring) + " Z" for ring in rings if ring
    )
    drawn = f'<path class="{kind}" fill="{STATUS_FILL[kind]}" d="{path}"/>'
    xs = [x for ring in rings for x, _ in ring]
    if kind != "other" and (not xs or max(xs) - min(xs) < SMALL_STATE_UNITS):
        x, y = project(geometry, *shape.point)
        drawn += f'<circle class="{kind} dot" cx="{x:.1f}" cy="{y:.1f}" r="5"/>'
    return f'<g data-country="{shape.code}">{drawn}</g>'


def _arrow(marker_id: str, colour: str, width: float) -> str:
    """An arrow head sized in map units (it grows more slowly than the line it ends)."""
    size = 8 + 1.6 * width
    return (
        f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="7" refY="5"'
        f' markerUnits="userSpaceOnUse" markerWidth="{size:.1f}" markerHeight="{size:.1f}"'
        ' orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 Z" fill="{colour}"/></marker>'
    )


def _flows(geometry: Geometry, flows: Sequence[Flow], colours: Mapping[str, str]) -> list[str]:
    largest: dict[str, int] = {}
    for flow in flows:
        largest[flow.currency] = max(largest.get(flow.currency, 0), flow.settled_value_minor)
    lanes: dict[str, int] = {}  # the next lane (bend) of each corridor
    drawn: list[str] = []
    any_selected = any(flow.selected for flow in flows)
    for flow in sorted(flows, key=lambda f: (f.selected, f.corridor, f.currency)):
        ends = (
            geometry.countries.get(flow.debtor_country),
            geometry.countries.get(flow.creditor_country),
        )
        if ends[0] is None or ends[1] is None:
            continue  # A country outside the map's box: the table still lists the flow.
        lane = lanes.get(flow.corridor, 0)
        lanes[flow.corridor] = lane + 1
        share = flow.settled_value_minor / largest[flow.currency] if largest[flow.currency] else 0
        width = WIDTH_MIN + WIDTH_SPAN * math.sqrt(share)
        marker_id = f"arrow-{len(drawn)}"
        shape = _curve(geometry, ends[0].point, ends[1].point, lane, width, marker_id)
        state = " selected" if flow.selected else (" dimmed" if any_selected else "")
        current = ' aria-current="true"' if flow.selected else ""
        drawn.append(
            f'<a href="{escape(flow.href)}" class="flow{state}"{current}'
            f' aria-label="{escape(flow.label)}" data-corridor="{flow.corridor}"'
            f' data-currency="{flow.currency}"><title>{escape(flow.label)}</title>'
            f"{_arrow(marker_id, colours[flow.currency], width)}"
            f'<g stroke="{colours[flow.currency]}" stroke-width="{width:.1f}">{shape}</g></a>'
        )
    return drawn


def _curve(
    geometry: Geometry, start: Point, end: Point, lane: int, width: float, marker_id: str
) -> str:
    (x1, y1), (x2, y2) = project(geometry, *start), project(geometry, *end)
    if (x1, y1) == (x2, y2):  # Domestic: a ring around the country's point.
        radius = 8 + 2 * lane + width
        return f'<circle cx="{x1:.1f}" cy="{y1:.1f}" r="{radius:.1f}" fill="none"/>'
    dx, dy = x2 - x1, y2 - y1
    bend = BEND + BEND_STEP * lane
    # The control point: the middle, moved to the right of the direction of travel.
    cx, cy = (x1 + x2) / 2 - dy * bend, (y1 + y2) / 2 + dx * bend
    return (
        f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" fill="none"'
        f' stroke-linecap="round" marker-end="url(#{marker_id})"/>'
    )
