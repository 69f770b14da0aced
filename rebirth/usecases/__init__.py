"""The use cases: what a command or a call of the Python API does, from its arguments to its records.

Each wires the parts together (a model from ``rebirth.models``, a device from ``rebirth.devices``, a measurement
from ``rebirth.profiler``, a slimming from ``rebirth.slimmer``, the store of ``rebirth.results``) and returns the
records of ``rebirth.contract``; the command line prints them with ``rebirth.reports``, the Python API returns
them. Nothing is imported here, so that ``rebirth --help`` stays light.
"""
