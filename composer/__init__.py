"""compose: reproducible distroless Python images from locked Debian packages."""

__version__ = "0.1.0"
