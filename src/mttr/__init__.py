"""mttr: the command-line driver of the mttr.recovery collection."""

__version__ = "0.1.0"
