WITH spine AS MATERIALIZED (
  SELECT
    ROW_NUMBER() OVER () AS pid,
    e.event_id AS event_id,
    e.user_id AS user_id,
    e.product_id AS product_id,
    e.ts_ms AS t,
    CAST(e.price AS DOUBLE PRECISION) AS price
  FROM rtml_offline.events_events AS e
  WHERE
    (
      event_type = 'cart'
    ) AND NOT e.user_id IS NULL AND NOT e.product_id IS NULL
), g0_ev AS NOT MATERIALIZED (
  SELECT
    e.user_id AS k0,
    e.ts_ms AS ts,
    (
      e.ts_ms - (
        (
          (
            e.ts_ms % 60000
          ) + 60000
        ) % 60000
      )
    ) AS tile,
    CASE WHEN (
      event_type = 'view'
    ) THEN 1 END AS v0,
    CASE WHEN (
      event_type = 'view'
    ) THEN e.product_id END AS v1
  FROM rtml_offline.events_events AS e
  WHERE
    NOT e.user_id IS NULL
), g0_pr AS (
  SELECT
    s.pid,
    s.user_id AS k0,
    s.t,
    (
      s.t - (
        (
          (
            s.t % 60000
          ) + 60000
        ) % 60000
      )
    ) AS tile
  FROM spine AS s
), g0_pt AS (
  SELECT DISTINCT
    k0,
    tile
  FROM g0_pr
), g0_tiles AS (
  SELECT
    k0,
    tile,
    COUNT(v0) AS n0
  FROM g0_ev
  GROUP BY
    k0,
    tile
), g0_head AS (
  SELECT
    p.pid,
    COUNT(ev.v0) AS h0_n
  FROM g0_pr AS p
  LEFT JOIN g0_ev AS ev
    ON ev.k0 = p.k0 AND ev.tile = p.tile AND ev.ts < p.t
  GROUP BY
    p.pid
), g0_cum AS (
  SELECT
    k0,
    pt AS tile,
    MAX(CASE WHEN slot = 0 THEN n0 END) AS n0_0,
    MAX(CASE WHEN slot = 1 THEN n0 END) AS n0_1,
    MAX(CASE WHEN slot = 2 THEN n0 END) AS n0_2,
    MAX(CASE WHEN slot = 3 THEN n0 END) AS n0_3
  FROM (
    SELECT
      k0,
      slot,
      pt,
      SUM(n0) OVER (PARTITION BY k0 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n0
    FROM (
      SELECT
        k0,
        tile AS o,
        NULL AS slot,
        NULL AS pt,
        n0
      FROM g0_tiles
      UNION ALL
      SELECT
        k0,
        tile - 1 AS o,
        0 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g0_pt
      UNION ALL
      SELECT
        k0,
        tile - 600001 AS o,
        1 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g0_pt
      UNION ALL
      SELECT
        k0,
        tile - 3600001 AS o,
        2 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g0_pt
      UNION ALL
      SELECT
        k0,
        tile - 86400001 AS o,
        3 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g0_pt
    ) AS u
  ) AS x
  WHERE
    NOT slot IS NULL
  GROUP BY
    k0,
    pt
), g0_dv1 AS (
  SELECT
    k0,
    tile,
    (
      tile - (
        (
          (
            tile % 3660000
          ) + 3660000
        ) % 3660000
      )
    ) AS bucket,
    v1 AS v,
    MIN(ts) AS first_ts
  FROM g0_ev
  WHERE
    NOT v1 IS NULL
  GROUP BY
    k0,
    tile,
    v1
), g0_cd1 AS (
  SELECT
    p.pid,
    COUNT(
      DISTINCT CASE
        WHEN d.tile >= (
          p.t - 3600000 - (
            (
              (
                p.t - 3600000 % 60000
              ) + 60000
            ) % 60000
          )
        )
        AND (
          d.tile < p.tile OR d.first_ts < p.t
        )
        THEN d.v
      END
    ) AS f0
  FROM (
    SELECT
      pid,
      k0,
      t,
      tile,
      (
        tile - (
          (
            (
              tile % 3660000
            ) + 3660000
          ) % 3660000
        )
      ) AS bucket
    FROM g0_pr
    UNION ALL
    SELECT
      pid,
      k0,
      t,
      tile,
      bucket - 3660000 AS bucket
    FROM (
      SELECT
        pid,
        k0,
        t,
        tile,
        (
          tile - (
            (
              (
                tile % 3660000
              ) + 3660000
            ) % 3660000
          )
        ) AS bucket
      FROM g0_pr
    ) AS q
  ) AS p
  LEFT JOIN g0_dv1 AS d
    ON d.k0 = p.k0
    AND d.bucket = p.bucket
    AND d.tile >= (
      p.t - 3600000 - (
        (
          (
            p.t - 3600000 % 60000
          ) + 60000
        ) % 60000
      )
    )
    AND d.tile <= p.tile
  GROUP BY
    p.pid
), g0 AS (
  SELECT
    p.pid,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_1, 0)
    ) + h.h0_n AS BIGINT) AS user_activity__views_10m,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_2, 0)
    ) + h.h0_n AS BIGINT) AS user_activity__views_1h,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_3, 0)
    ) + h.h0_n AS BIGINT) AS user_activity__views_1d,
    cd1.f0 AS user_activity__products_viewed_1h
  FROM g0_pr AS p
  JOIN g0_head AS h
    ON h.pid = p.pid
  LEFT JOIN g0_cum AS c
    ON c.k0 = p.k0 AND c.tile = p.tile
  JOIN g0_cd1 AS cd1
    ON cd1.pid = p.pid
), g1_ev AS NOT MATERIALIZED (
  SELECT
    e.user_id AS k0,
    e.ts_ms AS ts,
    (
      e.ts_ms - (
        (
          (
            e.ts_ms % 3600000
          ) + 3600000
        ) % 3600000
      )
    ) AS tile,
    CASE WHEN (
      event_type = 'cart'
    ) THEN 1 END AS v0,
    CASE WHEN (
      event_type = 'purchase'
    ) THEN 1 END AS v1,
    CASE WHEN (
      event_type = 'view'
    ) THEN e.price END AS v2
  FROM rtml_offline.events_events AS e
  WHERE
    NOT e.user_id IS NULL
), g1_pr AS (
  SELECT
    s.pid,
    s.user_id AS k0,
    s.t,
    (
      s.t - (
        (
          (
            s.t % 3600000
          ) + 3600000
        ) % 3600000
      )
    ) AS tile
  FROM spine AS s
), g1_pt AS (
  SELECT DISTINCT
    k0,
    tile
  FROM g1_pr
), g1_tiles AS (
  SELECT
    k0,
    tile,
    COUNT(v0) AS n0,
    COUNT(v1) AS n1,
    SUM(v2) AS s2,
    COUNT(v2) AS n2
  FROM g1_ev
  GROUP BY
    k0,
    tile
), g1_head AS (
  SELECT
    p.pid,
    COUNT(ev.v0) AS h0_n,
    COUNT(ev.v1) AS h1_n,
    SUM(ev.v2) AS h2_s,
    COUNT(ev.v2) AS h2_n
  FROM g1_pr AS p
  LEFT JOIN g1_ev AS ev
    ON ev.k0 = p.k0 AND ev.tile = p.tile AND ev.ts < p.t
  GROUP BY
    p.pid
), g1_cum AS (
  SELECT
    k0,
    pt AS tile,
    MAX(CASE WHEN slot = 0 THEN n0 END) AS n0_0,
    MAX(CASE WHEN slot = 1 THEN n0 END) AS n0_1,
    MAX(CASE WHEN slot = 2 THEN n0 END) AS n0_2,
    MAX(CASE WHEN slot = 3 THEN n0 END) AS n0_3,
    MAX(CASE WHEN slot = 0 THEN n1 END) AS n1_0,
    MAX(CASE WHEN slot = 1 THEN n1 END) AS n1_1,
    MAX(CASE WHEN slot = 2 THEN n1 END) AS n1_2,
    MAX(CASE WHEN slot = 3 THEN n1 END) AS n1_3
  FROM (
    SELECT
      k0,
      slot,
      pt,
      SUM(n0) OVER (PARTITION BY k0 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n0,
      SUM(n1) OVER (PARTITION BY k0 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n1
    FROM (
      SELECT
        k0,
        tile AS o,
        NULL AS slot,
        NULL AS pt,
        n0,
        n1
      FROM g1_tiles
      UNION ALL
      SELECT
        k0,
        tile - 1 AS o,
        0 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g1_pt
      UNION ALL
      SELECT
        k0,
        tile - 86400001 AS o,
        1 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g1_pt
      UNION ALL
      SELECT
        k0,
        tile - 604800001 AS o,
        2 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g1_pt
      UNION ALL
      SELECT
        k0,
        tile - 2592000001 AS o,
        3 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g1_pt
    ) AS u
  ) AS x
  WHERE
    NOT slot IS NULL
  GROUP BY
    k0,
    pt
), g1_body AS (
  SELECT
    *
  FROM (
    SELECT
      k0,
      o + 1 AS tile,
      probe,
      SUM(s2) OVER (PARTITION BY k0 ORDER BY o RANGE BETWEEN 604799999 PRECEDING AND CURRENT ROW) AS b2_0_s,
      SUM(n2) OVER (PARTITION BY k0 ORDER BY o RANGE BETWEEN 604799999 PRECEDING AND CURRENT ROW) AS b2_0_n
    FROM (
      SELECT
        k0,
        tile AS o,
        FALSE AS probe,
        s2,
        n2
      FROM g1_tiles
      UNION ALL
      SELECT
        k0,
        tile - 1 AS o,
        TRUE AS probe,
        NULL AS s2,
        NULL AS n2
      FROM g1_pt
    ) AS u
  ) AS x
  WHERE
    probe
), g1 AS (
  SELECT
    p.pid,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_1, 0)
    ) + h.h0_n AS BIGINT) AS user_activity__carts_1d,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_2, 0)
    ) + h.h0_n AS BIGINT) AS user_activity__carts_7d,
    CAST((
      COALESCE(c.n1_0, 0) - COALESCE(c.n1_3, 0)
    ) + h.h1_n AS BIGINT) AS user_activity__purchases_30d,
    CASE
      WHEN (
        COALESCE(b.b2_0_n, 0) + h.h2_n
      ) = 0
      THEN NULL
      ELSE CAST((
        COALESCE(b.b2_0_s, 0) + COALESCE(h.h2_s, 0)
      ) AS DOUBLE PRECISION) / (
        COALESCE(b.b2_0_n, 0) + h.h2_n
      )
    END AS user_activity__viewed_price_7d
  FROM g1_pr AS p
  JOIN g1_head AS h
    ON h.pid = p.pid
  LEFT JOIN g1_cum AS c
    ON c.k0 = p.k0 AND c.tile = p.tile
  LEFT JOIN g1_body AS b
    ON b.k0 = p.k0 AND b.tile = p.tile
), g2_ev AS NOT MATERIALIZED (
  SELECT
    e.product_id AS k0,
    e.ts_ms AS ts,
    (
      e.ts_ms - (
        (
          (
            e.ts_ms % 60000
          ) + 60000
        ) % 60000
      )
    ) AS tile,
    CASE WHEN (
      event_type = 'view'
    ) THEN 1 END AS v0
  FROM rtml_offline.events_events AS e
  WHERE
    NOT e.product_id IS NULL
), g2_pr AS (
  SELECT
    s.pid,
    s.product_id AS k0,
    s.t,
    (
      s.t - (
        (
          (
            s.t % 60000
          ) + 60000
        ) % 60000
      )
    ) AS tile
  FROM spine AS s
), g2_pt AS (
  SELECT DISTINCT
    k0,
    tile
  FROM g2_pr
), g2_tiles AS (
  SELECT
    k0,
    tile,
    COUNT(v0) AS n0
  FROM g2_ev
  GROUP BY
    k0,
    tile
), g2_head AS (
  SELECT
    p.pid,
    COUNT(ev.v0) AS h0_n
  FROM g2_pr AS p
  LEFT JOIN g2_ev AS ev
    ON ev.k0 = p.k0 AND ev.tile = p.tile AND ev.ts < p.t
  GROUP BY
    p.pid
), g2_cum AS (
  SELECT
    k0,
    pt AS tile,
    MAX(CASE WHEN slot = 0 THEN n0 END) AS n0_0,
    MAX(CASE WHEN slot = 1 THEN n0 END) AS n0_1,
    MAX(CASE WHEN slot = 2 THEN n0 END) AS n0_2
  FROM (
    SELECT
      k0,
      slot,
      pt,
      SUM(n0) OVER (PARTITION BY k0 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n0
    FROM (
      SELECT
        k0,
        tile AS o,
        NULL AS slot,
        NULL AS pt,
        n0
      FROM g2_tiles
      UNION ALL
      SELECT
        k0,
        tile - 1 AS o,
        0 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g2_pt
      UNION ALL
      SELECT
        k0,
        tile - 3600001 AS o,
        1 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g2_pt
      UNION ALL
      SELECT
        k0,
        tile - 86400001 AS o,
        2 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g2_pt
    ) AS u
  ) AS x
  WHERE
    NOT slot IS NULL
  GROUP BY
    k0,
    pt
), g2 AS (
  SELECT
    p.pid,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_1, 0)
    ) + h.h0_n AS BIGINT) AS product_stats__views_1h,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_2, 0)
    ) + h.h0_n AS BIGINT) AS product_stats__views_1d
  FROM g2_pr AS p
  JOIN g2_head AS h
    ON h.pid = p.pid
  LEFT JOIN g2_cum AS c
    ON c.k0 = p.k0 AND c.tile = p.tile
), g3_ev AS NOT MATERIALIZED (
  SELECT
    e.product_id AS k0,
    e.ts_ms AS ts,
    (
      e.ts_ms - (
        (
          (
            e.ts_ms % 3600000
          ) + 3600000
        ) % 3600000
      )
    ) AS tile,
    CASE WHEN (
      event_type = 'cart'
    ) THEN 1 END AS v0,
    CASE WHEN (
      event_type = 'purchase'
    ) THEN 1 END AS v1,
    e.price AS v2
  FROM rtml_offline.events_events AS e
  WHERE
    NOT e.product_id IS NULL
), g3_pr AS (
  SELECT
    s.pid,
    s.product_id AS k0,
    s.t,
    (
      s.t - (
        (
          (
            s.t % 3600000
          ) + 3600000
        ) % 3600000
      )
    ) AS tile
  FROM spine AS s
), g3_pt AS (
  SELECT DISTINCT
    k0,
    tile
  FROM g3_pr
), g3_tiles AS (
  SELECT
    k0,
    tile,
    COUNT(v0) AS n0,
    COUNT(v1) AS n1,
    SUM(v2) AS s2,
    COUNT(v2) AS n2
  FROM g3_ev
  GROUP BY
    k0,
    tile
), g3_head AS (
  SELECT
    p.pid,
    COUNT(ev.v0) AS h0_n,
    COUNT(ev.v1) AS h1_n,
    SUM(ev.v2) AS h2_s,
    COUNT(ev.v2) AS h2_n
  FROM g3_pr AS p
  LEFT JOIN g3_ev AS ev
    ON ev.k0 = p.k0 AND ev.tile = p.tile AND ev.ts < p.t
  GROUP BY
    p.pid
), g3_cum AS (
  SELECT
    k0,
    pt AS tile,
    MAX(CASE WHEN slot = 0 THEN n0 END) AS n0_0,
    MAX(CASE WHEN slot = 1 THEN n0 END) AS n0_1,
    MAX(CASE WHEN slot = 0 THEN n1 END) AS n1_0,
    MAX(CASE WHEN slot = 1 THEN n1 END) AS n1_1
  FROM (
    SELECT
      k0,
      slot,
      pt,
      SUM(n0) OVER (PARTITION BY k0 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n0,
      SUM(n1) OVER (PARTITION BY k0 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n1
    FROM (
      SELECT
        k0,
        tile AS o,
        NULL AS slot,
        NULL AS pt,
        n0,
        n1
      FROM g3_tiles
      UNION ALL
      SELECT
        k0,
        tile - 1 AS o,
        0 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g3_pt
      UNION ALL
      SELECT
        k0,
        tile - 604800001 AS o,
        1 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g3_pt
    ) AS u
  ) AS x
  WHERE
    NOT slot IS NULL
  GROUP BY
    k0,
    pt
), g3_body AS (
  SELECT
    *
  FROM (
    SELECT
      k0,
      o + 1 AS tile,
      probe,
      SUM(s2) OVER (PARTITION BY k0 ORDER BY o RANGE BETWEEN 604799999 PRECEDING AND CURRENT ROW) AS b2_0_s,
      SUM(n2) OVER (PARTITION BY k0 ORDER BY o RANGE BETWEEN 604799999 PRECEDING AND CURRENT ROW) AS b2_0_n
    FROM (
      SELECT
        k0,
        tile AS o,
        FALSE AS probe,
        s2,
        n2
      FROM g3_tiles
      UNION ALL
      SELECT
        k0,
        tile - 1 AS o,
        TRUE AS probe,
        NULL AS s2,
        NULL AS n2
      FROM g3_pt
    ) AS u
  ) AS x
  WHERE
    probe
), g3 AS (
  SELECT
    p.pid,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_1, 0)
    ) + h.h0_n AS BIGINT) AS product_stats__carts_7d,
    CAST((
      COALESCE(c.n1_0, 0) - COALESCE(c.n1_1, 0)
    ) + h.h1_n AS BIGINT) AS product_stats__purchases_7d,
    CASE
      WHEN (
        COALESCE(b.b2_0_n, 0) + h.h2_n
      ) = 0
      THEN NULL
      ELSE CAST((
        COALESCE(b.b2_0_s, 0) + COALESCE(h.h2_s, 0)
      ) AS DOUBLE PRECISION) / (
        COALESCE(b.b2_0_n, 0) + h.h2_n
      )
    END AS product_stats__price_7d
  FROM g3_pr AS p
  JOIN g3_head AS h
    ON h.pid = p.pid
  LEFT JOIN g3_cum AS c
    ON c.k0 = p.k0 AND c.tile = p.tile
  LEFT JOIN g3_body AS b
    ON b.k0 = p.k0 AND b.tile = p.tile
), g4_ev AS NOT MATERIALIZED (
  SELECT
    e.user_id AS k0,
    e.product_id AS k1,
    e.ts_ms AS ts,
    (
      e.ts_ms - (
        (
          (
            e.ts_ms % 60000
          ) + 60000
        ) % 60000
      )
    ) AS tile,
    CASE WHEN (
      event_type = 'view'
    ) THEN 1 END AS v0
  FROM rtml_offline.events_events AS e
  WHERE
    NOT e.user_id IS NULL AND NOT e.product_id IS NULL
), g4_pr AS (
  SELECT
    s.pid,
    s.user_id AS k0,
    s.product_id AS k1,
    s.t,
    (
      s.t - (
        (
          (
            s.t % 60000
          ) + 60000
        ) % 60000
      )
    ) AS tile
  FROM spine AS s
), g4_pt AS (
  SELECT DISTINCT
    k0,
    k1,
    tile
  FROM g4_pr
), g4_tiles AS (
  SELECT
    k0,
    k1,
    tile,
    COUNT(v0) AS n0
  FROM g4_ev
  GROUP BY
    k0,
    k1,
    tile
), g4_head AS (
  SELECT
    p.pid,
    COUNT(ev.v0) AS h0_n
  FROM g4_pr AS p
  LEFT JOIN g4_ev AS ev
    ON ev.k0 = p.k0 AND ev.k1 = p.k1 AND ev.tile = p.tile AND ev.ts < p.t
  GROUP BY
    p.pid
), g4_cum AS (
  SELECT
    k0,
    k1,
    pt AS tile,
    MAX(CASE WHEN slot = 0 THEN n0 END) AS n0_0,
    MAX(CASE WHEN slot = 1 THEN n0 END) AS n0_1,
    MAX(CASE WHEN slot = 2 THEN n0 END) AS n0_2,
    MAX(CASE WHEN slot = 3 THEN n0 END) AS n0_3
  FROM (
    SELECT
      k0,
      k1,
      slot,
      pt,
      SUM(n0) OVER (PARTITION BY k0, k1 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n0
    FROM (
      SELECT
        k0,
        k1,
        tile AS o,
        NULL AS slot,
        NULL AS pt,
        n0
      FROM g4_tiles
      UNION ALL
      SELECT
        k0,
        k1,
        tile - 1 AS o,
        0 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g4_pt
      UNION ALL
      SELECT
        k0,
        k1,
        tile - 300001 AS o,
        1 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g4_pt
      UNION ALL
      SELECT
        k0,
        k1,
        tile - 3600001 AS o,
        2 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g4_pt
      UNION ALL
      SELECT
        k0,
        k1,
        tile - 86400001 AS o,
        3 AS slot,
        tile AS pt,
        NULL AS n0
      FROM g4_pt
    ) AS u
  ) AS x
  WHERE
    NOT slot IS NULL
  GROUP BY
    k0,
    k1,
    pt
), g4 AS (
  SELECT
    p.pid,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_1, 0)
    ) + h.h0_n AS BIGINT) AS user_product__views_5m,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_2, 0)
    ) + h.h0_n AS BIGINT) AS user_product__views_1h,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_3, 0)
    ) + h.h0_n AS BIGINT) AS user_product__views_1d
  FROM g4_pr AS p
  JOIN g4_head AS h
    ON h.pid = p.pid
  LEFT JOIN g4_cum AS c
    ON c.k0 = p.k0 AND c.k1 = p.k1 AND c.tile = p.tile
), g5_ev AS NOT MATERIALIZED (
  SELECT
    e.user_id AS k0,
    e.product_id AS k1,
    e.ts_ms AS ts,
    (
      e.ts_ms - (
        (
          (
            e.ts_ms % 3600000
          ) + 3600000
        ) % 3600000
      )
    ) AS tile,
    CASE WHEN (
      event_type = 'cart'
    ) THEN 1 END AS v0,
    CASE WHEN (
      event_type = 'remove_from_cart'
    ) THEN 1 END AS v1
  FROM rtml_offline.events_events AS e
  WHERE
    NOT e.user_id IS NULL AND NOT e.product_id IS NULL
), g5_pr AS (
  SELECT
    s.pid,
    s.user_id AS k0,
    s.product_id AS k1,
    s.t,
    (
      s.t - (
        (
          (
            s.t % 3600000
          ) + 3600000
        ) % 3600000
      )
    ) AS tile
  FROM spine AS s
), g5_pt AS (
  SELECT DISTINCT
    k0,
    k1,
    tile
  FROM g5_pr
), g5_tiles AS (
  SELECT
    k0,
    k1,
    tile,
    COUNT(v0) AS n0,
    COUNT(v1) AS n1
  FROM g5_ev
  GROUP BY
    k0,
    k1,
    tile
), g5_head AS (
  SELECT
    p.pid,
    COUNT(ev.v0) AS h0_n,
    COUNT(ev.v1) AS h1_n
  FROM g5_pr AS p
  LEFT JOIN g5_ev AS ev
    ON ev.k0 = p.k0 AND ev.k1 = p.k1 AND ev.tile = p.tile AND ev.ts < p.t
  GROUP BY
    p.pid
), g5_cum AS (
  SELECT
    k0,
    k1,
    pt AS tile,
    MAX(CASE WHEN slot = 0 THEN n0 END) AS n0_0,
    MAX(CASE WHEN slot = 1 THEN n0 END) AS n0_1,
    MAX(CASE WHEN slot = 0 THEN n1 END) AS n1_0,
    MAX(CASE WHEN slot = 1 THEN n1 END) AS n1_1
  FROM (
    SELECT
      k0,
      k1,
      slot,
      pt,
      SUM(n0) OVER (PARTITION BY k0, k1 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n0,
      SUM(n1) OVER (PARTITION BY k0, k1 ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n1
    FROM (
      SELECT
        k0,
        k1,
        tile AS o,
        NULL AS slot,
        NULL AS pt,
        n0,
        n1
      FROM g5_tiles
      UNION ALL
      SELECT
        k0,
        k1,
        tile - 1 AS o,
        0 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g5_pt
      UNION ALL
      SELECT
        k0,
        k1,
        tile - 86400001 AS o,
        1 AS slot,
        tile AS pt,
        NULL AS n0,
        NULL AS n1
      FROM g5_pt
    ) AS u
  ) AS x
  WHERE
    NOT slot IS NULL
  GROUP BY
    k0,
    k1,
    pt
), g5 AS (
  SELECT
    p.pid,
    CAST((
      COALESCE(c.n0_0, 0) - COALESCE(c.n0_1, 0)
    ) + h.h0_n AS BIGINT) AS user_product__carts_1d,
    CAST((
      COALESCE(c.n1_0, 0) - COALESCE(c.n1_1, 0)
    ) + h.h1_n AS BIGINT) AS user_product__removes_1d
  FROM g5_pr AS p
  JOIN g5_head AS h
    ON h.pid = p.pid
  LEFT JOIN g5_cum AS c
    ON c.k0 = p.k0 AND c.k1 = p.k1 AND c.tile = p.tile
), labels AS (
  SELECT
    s.pid
  FROM spine AS s
  WHERE
    EXISTS(
      SELECT
        1
      FROM rtml_offline.events_events AS o
      WHERE
        o.user_id = s.user_id
        AND o.product_id = s.product_id
        AND o.ts_ms > s.t
        AND o.ts_ms <= s.t + 3600000
        AND (
          event_type = 'purchase'
        )
    )
), horizon AS (
  SELECT
    MAX(ts_ms) AS last_ts
  FROM rtml_offline.events_events
)
SELECT
  event_id,
  user_id,
  product_id,
  t AS ts_ms,
  price,
  user_activity__views_10m,
  user_activity__views_1h,
  user_activity__views_1d,
  user_activity__carts_1d,
  user_activity__carts_7d,
  user_activity__purchases_30d,
  user_activity__products_viewed_1h,
  user_activity__viewed_price_7d,
  product_stats__views_1h,
  product_stats__views_1d,
  product_stats__carts_7d,
  product_stats__purchases_7d,
  product_stats__price_7d,
  user_product__views_5m,
  user_product__views_1h,
  user_product__views_1d,
  user_product__carts_1d,
  user_product__removes_1d,
  CAST(price AS DOUBLE PRECISION) / NULLIF(product_stats__price_7d, 0) AS price_vs_product_mean,
  CAST(product_stats__purchases_7d AS DOUBLE PRECISION) / (
    product_stats__carts_7d + 1.0
  ) AS product_conversion_7d,
  label
FROM (
  SELECT
    s.pid,
    s.event_id,
    s.user_id,
    s.product_id,
    s.t,
    s.price,
    g0.user_activity__views_10m AS user_activity__views_10m,
    g0.user_activity__views_1h AS user_activity__views_1h,
    g0.user_activity__views_1d AS user_activity__views_1d,
    g1.user_activity__carts_1d AS user_activity__carts_1d,
    g1.user_activity__carts_7d AS user_activity__carts_7d,
    g1.user_activity__purchases_30d AS user_activity__purchases_30d,
    g0.user_activity__products_viewed_1h AS user_activity__products_viewed_1h,
    g1.user_activity__viewed_price_7d AS user_activity__viewed_price_7d,
    g2.product_stats__views_1h AS product_stats__views_1h,
    g2.product_stats__views_1d AS product_stats__views_1d,
    g3.product_stats__carts_7d AS product_stats__carts_7d,
    g3.product_stats__purchases_7d AS product_stats__purchases_7d,
    g3.product_stats__price_7d AS product_stats__price_7d,
    g4.user_product__views_5m AS user_product__views_5m,
    g4.user_product__views_1h AS user_product__views_1h,
    g4.user_product__views_1d AS user_product__views_1d,
    g5.user_product__carts_1d AS user_product__carts_1d,
    g5.user_product__removes_1d AS user_product__removes_1d,
    CASE WHEN labels.pid IS NULL THEN 0 ELSE 1 END AS label
  FROM spine AS s
  JOIN g0
    ON g0.pid = s.pid
  JOIN g1
    ON g1.pid = s.pid
  JOIN g2
    ON g2.pid = s.pid
  JOIN g3
    ON g3.pid = s.pid
  JOIN g4
    ON g4.pid = s.pid
  JOIN g5
    ON g5.pid = s.pid
  LEFT JOIN labels
    ON labels.pid = s.pid
  CROSS JOIN horizon
  WHERE
    s.t + 3600000 <= horizon.last_ts
) AS f
ORDER BY
  f.t,
  f.event_id
