"""Fernando Telemetry: the telemetry backend of a Python web platform.

Layers, from the top: ``cli``/``server``/``jobs`` (entry points) -> ``api`` -> ``services``
-> ``storage``/``notify`` -> ``core``. See docs/GUIDE.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
