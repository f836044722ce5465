"""wildspace: wildlife AI for camera traps, wildlife-trade investigations and re-identification."""

__version__ = "0.1.0"
