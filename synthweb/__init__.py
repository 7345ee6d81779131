"""synthweb: measure the machine-written share of the web."""

__version__ = "0.1.0"
