"""This distribution's version, written once: pyproject.toml reads it (setuptools `attr:`).

A constant, not `importlib.metadata.version()`: that parses the installed METADATA file, about
1-2 ms each time on a 2-core machine, and the client's User-Agent and the server's serverInfo
both need the version at every spawn.
"""

__version__ = "0.1.0"
