"""vbg: real-time virtual background for webcams and video files."""

__version__ = "0.1.0"


class VbgError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero."""
