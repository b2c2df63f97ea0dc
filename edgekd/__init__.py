"""edgekd: distil, quantize, export, verify, benchmark and hand off small models for edge devices."""

__version__ = "0.1.0"
