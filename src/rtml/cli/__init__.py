"""The ``rtml`` command line."""
