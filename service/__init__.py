"""sllen-service: gateway, Redis Streams queue and batching workers in front of Triton (SLLEN)."""

__version__ = "0.1.0"
