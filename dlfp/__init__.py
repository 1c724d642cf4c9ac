"""dlfp: deep learning from first principles, one config-driven framework."""

__version__ = "0.1.0"
