"""``rtml up``: the validator, the engine, the server, the monitor and the retraining
schedule of one project, supervised as child processes (see docs/up.md).

Import the supervisor from :mod:`rtml.services.supervisor.supervisor`; this package's
``__init__`` stays light because ``rtml.config`` imports its settings."""
