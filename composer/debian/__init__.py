"""Debian formats: bytes in, values out. No I/O."""
