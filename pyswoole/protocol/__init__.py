"""Sans-IO protocol layer: bytes in, events (packets, requests, frames) out. No sockets here."""

from pyswoole.protocol.framing import (
    EofFramer,
    Framer,
    FramingError,
    LengthFramer,
    make_framer,
)

__all__ = ["EofFramer", "Framer", "FramingError", "LengthFramer", "make_framer"]
