"""fraudctl: stand up and operate a real-time card-fraud detection pipeline."""

__version__ = "0.1.0"
