"""``rtml demo``: the whole loop, stage by stage, with a machine-readable summary."""
