"""Input seen by the console gateway: key and pointer messages in the browser's RFB stream, per desktop.

The gateway relays the browser's bytes to the display untouched; it feeds a
copy to an RfbInputWatcher, which follows the client's side of RFB 3.8 (the
version, the security type, VNC authentication's response, ClientInit, then
client messages) and says when a KeyEvent, a PointerEvent or QEMU's extended
key event went by. Framebuffer update requests, which an idle open tab sends
all the time, are not input. The time of the last input is the mtime of one
small file per desktop in the host's lifecycle dir, touched at most every few
seconds, so the lifecycle service reads it with a stat.
"""
from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
from pathlib import Path

log = logging.getLogger(__name__)

ACTIVITY_DIR = "activity"          # under the host's lifecycle dir: one file per desktop
RECORD_EVERY_S = 5.0               # at most one touch of the file per connection this often

_VERSION_LEN, _VNC_AUTH, _NO_AUTH = 12, 2, 1
_KEY, _POINTER, _QEMU = 4, 5, 255
_QEMU_KEY = 0
# Client messages of fixed length (type -> bytes including the type byte).
_FIXED = {0: 20, 3: 10, _KEY: 8, _POINTER: 6, 150: 10, 252: 4}


class RfbInputWatcher:
    """Follows one browser's RFB byte stream; feed() returns True when a chunk carried key or pointer input."""

    def __init__(self):
        self._buffer = b""
        self._stage = "version"
        self.lost = False        # an unknown message: the stream cannot be followed any further

    def feed(self, data: bytes) -> bool:
        if self.lost:
            return False
        self._buffer += data
        saw_input = False
        while True:
            step = self._step()
            if step is None:
                return saw_input
            saw_input |= step

    def _take(self, n: int) -> bytes | None:
        if len(self._buffer) < n:
            return None
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _step(self) -> bool | None:
        """Consume one unit of the stream: True for input, False for anything else, None: need more bytes."""
        buf = self._buffer
        if self._stage == "version":
            return None if self._take(_VERSION_LEN) is None else self._next("security")
        if self._stage == "security":
            chosen = self._take(1)
            if chosen is None:
                return None
            return self._next({_VNC_AUTH: "auth", _NO_AUTH: "init"}.get(chosen[0], "lost"))
        if self._stage == "auth":
            return None if self._take(16) is None else self._next("init")
        if self._stage == "init":
            return None if self._take(1) is None else self._next("messages")
        if self._stage == "lost" or not buf:
            return None
        size = self._message_size(buf)
        if size is None or self._take(size) is None:
            return None
        return buf[0] in (_KEY, _POINTER) or (buf[0] == _QEMU and buf[1] == _QEMU_KEY)

    def _next(self, stage: str) -> bool:
        self._stage = stage
        if stage == "lost":
            self._lose("a security type the watcher does not follow")
        return False

    def _lose(self, why: str) -> None:
        self.lost, self._stage, self._buffer = True, "lost", b""
        log.info("console input no longer followed on this connection: %s", why)

    def _message_size(self, buf: bytes) -> int | None:
        """The whole message's length from its header, None while the header is incomplete."""
        kind = buf[0]
        if kind in _FIXED:
            return _FIXED[kind]
        if kind == 2:                                  # SetEncodings: 4 + 4 per encoding
            return None if len(buf) < 4 else 4 + 4 * struct.unpack(">H", buf[2:4])[0]
        if kind == 6:                                  # ClientCutText: 8 + text (negative: extended)
            return None if len(buf) < 8 else 8 + abs(struct.unpack(">i", buf[4:8])[0])
        if kind == 248:                                # ClientFence: 9 + payload
            return None if len(buf) < 9 else 9 + buf[8]
        if kind == 251:                                # SetDesktopSize: 8 + 16 per screen
            return None if len(buf) < 8 else 8 + 16 * buf[6]
        if kind == _QEMU:
            if len(buf) < 2:
                return None
            if buf[1] == _QEMU_KEY:
                return 12
            if buf[1] == 1:                            # QEMU audio: 4, or 10 for set-format
                return None if len(buf) < 4 else 10 if struct.unpack(">H", buf[2:4])[0] == 2 else 4
        self._lose(f"client message type {kind}")
        return None


def activity_file(lifecycle_dir: Path, desktop: str) -> Path:
    return Path(lifecycle_dir) / ACTIVITY_DIR / desktop


def record_input(lifecycle_dir: Path, desktop: str, at: float | None = None) -> None:
    """Note input on a desktop's console: the activity file's mtime is its time."""
    path = activity_file(lifecycle_dir, desktop)
    at = time.time() if at is None else at
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (at, at))
    except OSError as exc:
        log.warning("cannot record console input of %s in %s: %s", desktop, path, exc)


def last_input(lifecycle_dir: Path, desktop: str) -> float | None:
    with contextlib.suppress(OSError):
        return activity_file(lifecycle_dir, desktop).stat().st_mtime
    return None


class ConsoleInput:
    """One console connection's hook: feed it the browser's frames; it records input, rate-limited."""

    def __init__(self, lifecycle_dir: Path, desktop: str):
        self.lifecycle_dir, self.desktop = Path(lifecycle_dir), desktop
        self.watcher = RfbInputWatcher()
        self._recorded = 0.0

    @classmethod
    def for_console(cls, console_dir: Path, desktop: str) -> "ConsoleInput":
        """The gateway's console dir is <host>/console; the lifecycle dir is its sibling <host>/lifecycle."""
        return cls(Path(console_dir).parent / "lifecycle", desktop)

    def feed(self, frames) -> None:
        saw = False
        for frame in frames:
            saw |= self.watcher.feed(frame)
        now = time.time()
        if saw and now - self._recorded >= RECORD_EVERY_S:
            self._recorded = now
            record_input(self.lifecycle_dir, self.desktop, now)
