"""Long-running processes: the schema registry, the validator, the engine, the server."""
