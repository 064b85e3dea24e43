"""The ``wattwise`` command line: thin commands over the library."""
