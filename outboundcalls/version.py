"""This distribution's version, written once: pyproject.toml reads it (setuptools `attr:`).

The client's User-Agent and the server's serverInfo import it: one literal, the same in a
checkout, a wheel and a bundle, with nothing to look up at run time.
"""

__version__ = "0.1.0"
