"""rtml's semantics, free of any backend: plans, validation, aggregation, joins, training policy."""
