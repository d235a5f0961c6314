"""The package version, in the bottom layer so that any module (the server's ``/info`` among them) can report it
without importing the root package."""

__version__ = "0.1.0"

__all__ = ["__version__"]
