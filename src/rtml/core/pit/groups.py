"""The CTEs of one (view, hop ``h``) group of a training set (see :mod:`rtml.core.pit.sql`).

For a spine row at time ``t``, a window ``w`` covers::

    [floor(t - w, h) .......... floor(t, h) ........ t)
     \\_ BODY: whole tiles ___/ \\_ HEAD: raw events _/

* ``gN_ev``    the source's events: key, ``ts``, ``tile = floor(ts, h)`` and one value per
               aggregation (``CASE WHEN <where> THEN <column> END``);
* ``gN_pr``    the spine rows with their tile; ``gN_pt`` the distinct (key, tile) of them;
* ``gN_tiles`` the events ``GROUP BY key, tile``: a partial aggregate per tile;
* ``gN_cum``   counts: a running total over the key's tiles, read at ``tile - 1`` and at
               ``tile - w - 1`` of each spine tile (lookup rows in the same sort); BODY is
               the difference, exact in integers;
* ``gN_body``  sums, means, min, max, last: a window over the key's tiles with the frame
               ``RANGE BETWEEN w - 1 PRECEDING AND CURRENT ROW`` at ``tile - 1`` (no
               differences of running float sums, so no cancellation);
* ``gN_head``  the events of the spine row's own tile before ``t``: a hash join on
               (key, tile) with ``ts < t``, grouped by spine row;
* ``gN``       BODY and HEAD merged per function.

``count_distinct`` cannot merge counts: it joins the spine to each tile's distinct values
(with their first time in the tile). ``last`` keeps the latest ``(ts, event_id)`` of each
tile as one sortable text and looks the value up by ``event_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtml.core.pit.layout import EVENT_ID, TS_MS
from rtml.core.pit.plan import AggSpec, ViewGroup

COLLATE_C = "rtml_collate_c"  # placeholder: binary string order (PostgreSQL needs COLLATE "C")
_TS_BIAS = 1 << 62  # makes every ms timestamp positive, so its 19-digit text sorts as the number

# Per function: the partial aggregates of a tile (the HEAD aggregates too), and how BODY
# merges the partials of the tiles in its frame. Counts go through gN_cum instead.
_TILE_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "count": (("n", "COUNT({})"),),
    "sum": (("s", "SUM({})"),),
    "mean": (("s", "SUM({})"), ("n", "COUNT({})")),
    "min": (("m", "MIN({})"),),
    "max": (("m", "MAX({})"),),
    "last": (("c", f"MAX({COLLATE_C}({{}}))"),),
}
_RANGE_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "sum": (("s", "SUM"),),
    "mean": (("s", "SUM"), ("n", "SUM")),
    "min": (("m", "MIN"),),
    "max": (("m", "MAX"),),
}


def floor_to(expr: str, step_ms: int) -> str:
    """``floor(expr, step)`` on integer ms, right for negative times too."""
    return f"({expr} - ((({expr} % {step_ms}) + {step_ms}) % {step_ms}))"


def bodies(window_ms: int, hop_ms: int) -> list[tuple[str, int]]:
    """The BODY lengths (ms of whole tiles before the spine row's tile) of a window: one
    when it is a whole number of hops, else the short (``a``) and the long (``b``) one,
    picked per row (``p.t - p.tile >= w % h``: short)."""
    whole, rest = divmod(window_ms, hop_ms)
    if rest == 0:
        return [("", whole * hop_ms)]
    return [("a", whole * hop_ms), ("b", (whole + 1) * hop_ms)]


@dataclass
class GroupSql:
    ctes: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # "expr AS <feature>" over p, h, b, c ...
    # CTEs to inline in each reader (NOT MATERIALIZED): re-reading the events table is
    # cheaper than writing ``gN_ev`` (every event of the source) to memory once
    inline: set[str] = field(default_factory=set)


def group_sql(g: str, group: ViewGroup, table: str) -> GroupSql:
    """The CTEs of ``group`` (prefix ``g``) over the events table ``table``; the last CTE,
    ``g``, has one row per spine row: ``pid`` and the group's features."""
    return _Group(g, group, table).build()


class _Group:
    def __init__(self, g: str, group: ViewGroup, table: str) -> None:
        self.g, self.group, self.table, self.h = g, group, table, group.hop_ms
        self.keys = [f"k{i}" for i in range(len(group.keys))]
        self.key_list = ", ".join(self.keys)
        self.out = GroupSql()
        self.joins: list[str] = []
        self.slots: dict[int, int] = {}  # BODY length -> lookup slot of gN_cum

    def on(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{k} = {b}.{k}" for k in self.keys)

    def cte(self, name: str, body: str) -> None:
        self.out.ctes.append((f"{self.g}_{name}" if name else self.g, body))

    def build(self) -> GroupSql:
        g, group = self.g, self.group
        values = ", ".join(f"{_value(agg)} AS v{i}" for i, agg in enumerate(group.aggs))
        key_cols = ", ".join(f"e.{n} AS {k}" for n, k in zip(group.keys, self.keys, strict=True))
        not_null = " AND ".join(f"e.{n} IS NOT NULL" for n in group.keys)
        self.cte(
            "ev",
            f"SELECT {key_cols}, e.{TS_MS} AS ts, {floor_to(f'e.{TS_MS}', self.h)} AS tile, {values} "
            f"FROM {self.table} AS e WHERE {not_null}",
        )
        self.out.inline.add(f"{g}_ev")
        probe_keys = ", ".join(f"s.{n} AS {k}" for n, k in zip(group.keys, self.keys, strict=True))
        self.cte("pr", f"SELECT s.pid, {probe_keys}, s.t, {floor_to('s.t', self.h)} AS tile FROM spine AS s")
        self.cte("pt", f"SELECT DISTINCT {self.key_list}, tile FROM {g}_pr")
        merged = [i for i, a in enumerate(group.aggs) if a.function != "count_distinct"]
        if merged:
            self._tiles(merged)
            self._head(merged)
            self.joins.append(f"JOIN {g}_head AS h ON h.pid = p.pid")
        counts = [i for i in merged if group.aggs[i].function == "count"]
        if counts:
            self._cumulative(counts)
        ranged = [i for i in merged if group.aggs[i].function != "count"]
        if ranged:
            self._ranges(ranged)
        for i, agg in enumerate(group.aggs):
            self.out.columns += self._features(i, agg)
        self.cte("", f"SELECT p.pid, {', '.join(self.out.columns)} FROM {g}_pr AS p {' '.join(self.joins)}")
        return self.out

    def _tiles(self, merged: list[int]) -> None:
        parts = [
            f"{agg.format(f'v{i}')} AS {kind}{i}"
            for i in merged
            for kind, agg in _TILE_PARTS[self.group.aggs[i].function]
        ]
        self.cte(
            "tiles",
            f"SELECT {self.key_list}, tile, {', '.join(parts)} FROM {self.g}_ev "
            f"GROUP BY {self.key_list}, tile",
        )

    def _head(self, merged: list[int]) -> None:
        parts = [
            f"{agg.format(f'ev.v{i}')} AS h{i}_{kind}"
            for i in merged
            for kind, agg in _TILE_PARTS[self.group.aggs[i].function]
        ]
        self.cte(
            "head",
            f"SELECT p.pid, {', '.join(parts)} FROM {self.g}_pr AS p LEFT JOIN {self.g}_ev AS ev "
            f"ON {self.on('ev', 'p')} AND ev.tile = p.tile AND ev.ts < p.t GROUP BY p.pid",
        )

    def _cumulative(self, counts: list[int]) -> None:
        """Running counts over the tiles, read by lookup rows at ``tile - L - 1`` for each
        BODY length ``L`` (slot 0: ``L = 0``, the spine row's own tile)."""
        lengths = sorted(
            {
                0,
                *(
                    lo
                    for i in counts
                    for w in self.group.aggs[i].windows
                    for _, lo in bodies(w.window_ms, self.h)
                ),
            }
        )
        self.slots = {lo: s for s, lo in enumerate(lengths)}
        ns = [f"n{i}" for i in counts]
        nulls = ", ".join(f"NULL AS {n}" for n in ns)
        lookups = " UNION ALL ".join(
            f"SELECT {self.key_list}, tile - {lo + 1} AS o, {s} AS slot, tile AS pt, {nulls} FROM {self.g}_pt"
            for lo, s in self.slots.items()
        )
        union = (
            f"SELECT {self.key_list}, tile AS o, NULL AS slot, NULL AS pt, {', '.join(ns)} "
            f"FROM {self.g}_tiles UNION ALL {lookups}"
        )
        frame = f"PARTITION BY {self.key_list} ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
        running = ", ".join(f"SUM({n}) OVER ({frame}) AS {n}" for n in ns)
        pivot = ", ".join(
            f"MAX(CASE WHEN slot = {s} THEN {n} END) AS {n}_{s}" for n in ns for s in self.slots.values()
        )
        self.cte(
            "cum",
            f"SELECT {self.key_list}, pt AS tile, {pivot} FROM (SELECT {self.key_list}, slot, pt, {running} "
            f"FROM ({union}) AS u) AS x WHERE slot IS NOT NULL GROUP BY {self.key_list}, pt",
        )
        self.joins.append(f"LEFT JOIN {self.g}_cum AS c ON {self.on('c', 'p')} AND c.tile = p.tile")

    def _ranges(self, ranged: list[int]) -> None:
        by = f"PARTITION BY {self.key_list} ORDER BY o"
        frames: list[str] = []
        parts: list[str] = []
        for i in ranged:
            agg = self.group.aggs[i]
            parts += [f"{kind}{i}" for kind, _ in _TILE_PARTS[agg.function]]
            if agg.function == "last":  # the latest of all earlier tiles, whatever the window
                frame = f"{by} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
                frames.append(f"MAX({COLLATE_C}(c{i})) OVER ({frame}) AS b{i}_c")
                continue
            for j, w in enumerate(agg.windows):
                for suffix, lo in bodies(w.window_ms, self.h):
                    frame = f"{by} RANGE BETWEEN {lo - 1} PRECEDING AND CURRENT ROW"
                    frames += [
                        f"{merge}({kind}{i}) OVER ({frame}) AS b{i}_{j}{suffix}_{kind}"
                        for kind, merge in _RANGE_PARTS[agg.function]
                    ]
        # A spine tile sorts 1 ms before its tile (o = tile - 1): the frame [tile - L, tile - 1]
        # holds exactly the whole tiles [tile - L, tile) of BODY.
        nulls = ", ".join(f"NULL AS {p}" for p in parts)
        union = (
            f"SELECT {self.key_list}, tile AS o, FALSE AS probe, {', '.join(parts)} FROM {self.g}_tiles "
            f"UNION ALL SELECT {self.key_list}, tile - 1 AS o, TRUE AS probe, {nulls} FROM {self.g}_pt"
        )
        windows = f"SELECT {self.key_list}, o + 1 AS tile, probe, {', '.join(frames)} FROM ({union}) AS u"
        self.cte("body", f"SELECT * FROM ({windows}) AS x WHERE probe")
        self.joins.append(f"LEFT JOIN {self.g}_body AS b ON {self.on('b', 'p')} AND b.tile = p.tile")

    def _features(self, i: int, agg: AggSpec) -> list[str]:
        f = agg.function
        if f == "count_distinct":
            self._count_distinct(i, agg)
            return [f"cd{i}.f{j} AS {w.name}" for j, w in enumerate(agg.windows)]
        if f == "last":
            latest = f"COALESCE(h.h{i}_c, b.b{i}_c)"
            self.joins.append(f"LEFT JOIN {self.table} AS l{i} ON l{i}.{EVENT_ID} = SUBSTRING({latest}, 20)")
            latest_ts = f"(CAST(SUBSTRING({latest}, 1, 19) AS BIGINT) - {_TS_BIAS})"
            starts = [(w.name, floor_to(f"p.t - {w.window_ms}", self.h)) for w in agg.windows]
            return [
                f"CASE WHEN {latest_ts} >= {start} THEN l{i}.{agg.column} END AS {name}"
                for name, start in starts
            ]
        return [f"{self._merge(agg, i, j, w.window_ms)} AS {w.name}" for j, w in enumerate(agg.windows)]

    def _merge(self, agg: AggSpec, i: int, j: int, window_ms: int) -> str:
        """BODY + HEAD of window ``j`` of aggregation ``i``."""
        variants = bodies(window_ms, self.h)

        def body(kind: str) -> str:
            def one(suffix: str, lo: int) -> str:
                if agg.function == "count":
                    return f"(COALESCE(c.n{i}_0, 0) - COALESCE(c.n{i}_{self.slots[lo]}, 0))"
                return f"b.b{i}_{j}{suffix}_{kind}"

            if len(variants) == 1:
                return one(*variants[0])
            short, long = variants
            return f"CASE WHEN p.t - p.tile >= {window_ms % self.h} THEN {one(*short)} ELSE {one(*long)} END"

        f = agg.function
        if f == "count":
            return f"CAST({body('n')} + h.h{i}_n AS BIGINT)"
        if f == "sum":
            total = f"COALESCE({body('s')}, 0) + COALESCE(h.h{i}_s, 0)"
            return f"CAST({total} AS BIGINT)" if agg.column_kind == "integer" else total
        if f == "mean":
            n = f"(COALESCE({body('n')}, 0) + h.h{i}_n)"
            s = f"(COALESCE({body('s')}, 0) + COALESCE(h.h{i}_s, 0))"
            return f"CASE WHEN {n} = 0 THEN NULL ELSE CAST({s} AS DOUBLE) / {n} END"
        if f == "min":
            return f"LEAST({body('m')}, h.h{i}_m)"
        if f == "max":
            return f"GREATEST({body('m')}, h.h{i}_m)"
        raise ValueError(f"function {f!r} is not merged from tiles")

    def _count_distinct(self, i: int, agg: AggSpec) -> None:
        """Distinct values over [start, t): every (tile, value) of the key in the longest
        window, with its first time in the tile (a value of the spine row's own tile counts
        only if it was seen before t).

        The join is an equi-join on (key, bucket), buckets of ``B = longest window + hop``:
        each spine row asks for its tile's bucket and the one before, which hold every tile
        its longest window reaches, so it meets those of the key's values and not the key's
        whole history."""
        g = self.g
        span = agg.windows[-1].window_ms + self.h
        self.cte(
            f"dv{i}",
            f"SELECT {self.key_list}, tile, {floor_to('tile', span)} AS bucket, v{i} AS v, "
            f"MIN(ts) AS first_ts FROM {g}_ev WHERE v{i} IS NOT NULL GROUP BY {self.key_list}, tile, v{i}",
        )
        longest = floor_to(f"p.t - {agg.windows[-1].window_ms}", self.h)
        counts = [
            f"COUNT(DISTINCT CASE WHEN d.tile >= {floor_to(f'p.t - {w.window_ms}', self.h)} "
            f"AND (d.tile < p.tile OR d.first_ts < p.t) THEN d.v END) AS f{j}"
            for j, w in enumerate(agg.windows)
        ]
        probe = f"SELECT pid, {self.key_list}, t, tile, {floor_to('tile', span)} AS bucket FROM {g}_pr"
        both = (
            f"{probe} UNION ALL "
            f"SELECT pid, {self.key_list}, t, tile, bucket - {span} AS bucket FROM ({probe}) AS q"
        )
        self.cte(
            f"cd{i}",
            f"SELECT p.pid, {', '.join(counts)} FROM ({both}) AS p LEFT JOIN {g}_dv{i} AS d "
            f"ON {self.on('d', 'p')} AND d.bucket = p.bucket AND d.tile >= {longest} AND d.tile <= p.tile "
            "GROUP BY p.pid",
        )
        self.joins.append(f"JOIN {g}_cd{i} AS cd{i} ON cd{i}.pid = p.pid")


def _value(agg: AggSpec) -> str:
    """What an aggregation reads from one event: NULL unless its ``where`` is TRUE."""
    if agg.function == "last":
        value = f"LPAD(CAST(e.{TS_MS} + {_TS_BIAS} AS VARCHAR), 19, '0') || e.{EVENT_ID}"
    elif agg.column is None:
        value = "1"
    else:
        value = f"e.{agg.column}"
    if agg.where is None:
        return value
    return f"CASE WHEN ({agg.where.render('duckdb')}) THEN {value} END"
