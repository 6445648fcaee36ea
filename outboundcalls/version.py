"""This distribution's version, written once: pyproject.toml reads it (setuptools `attr:`).

The client's User-Agent and the server's serverInfo import it rather than asking
`importlib.metadata` at run time, which parses the installed METADATA file at every spawn.
"""

__version__ = "0.1.0"
