"""rebirth: on-device profiling and DeepRebirth-style slimming of neural networks.

This package holds the command line and the wiring between ``profiler``, ``devices``,
``slimmer`` and ``reports``; the parts never import each other's internals.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
