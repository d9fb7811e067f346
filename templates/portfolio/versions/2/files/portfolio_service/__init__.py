"""Portfolio Manager: the core service of an ecoctl ecosystem."""

__version__ = "0.1.0"
