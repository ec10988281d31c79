"""One error type per kind of failure; messages name the file, the values and the fix."""

from __future__ import annotations


class OnemapError(Exception):
    """Base of every error onemap raises on purpose (the CLI prints it on one line)."""


class ConfigError(OnemapError):
    """A setting or configuration file is wrong."""


class CRSError(OnemapError):
    """A coordinate reference system is unknown or does not fit the data."""


class ReadError(OnemapError):
    """A file cannot be read at all (missing, wrong format, no coordinate columns)."""


class ValidationError(OnemapError):
    """Input rows or values do not fit their layer spec."""


class StoreError(OnemapError):
    """The DuckDB store is missing, locked or has an unexpected schema."""


class NetworkError(OnemapError):
    """The road network is missing or a point cannot be placed on it."""
