"""Type stubs of the C extension behind pyswoole.protocol.websocket's hot path."""

from typing import Any

class FrameBase:
    data: str | bytes
    opcode: int
    flags: int
    fd: Any

def set_frame_class(cls: type[FrameBase], /) -> None: ...
def parse_frame(data: bytes, fd: Any, limit: int, /) -> FrameBase | None: ...
def parse_frames(data: bytes, pos: int, fd: Any, limit: int, /) -> tuple[list[FrameBase], int]: ...
def pack(data: str | bytes, opcode: int, fin: bool = True, rsv1: bool = False, /) -> bytes: ...
