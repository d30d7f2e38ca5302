"""Console input: key and pointer messages in the browser's RFB stream are input; update requests are not."""
import struct

import pytest

from components.lifecycle import console_input
from components.lifecycle.console_input import ConsoleInput, RfbInputWatcher

HANDSHAKE = b"RFB 003.008\n" + bytes([2]) + bytes(range(16)) + bytes([1])   # VNC auth, shared ClientInit
SET_PIXEL_FORMAT = bytes([0, 0, 0, 0]) + bytes(16)
SET_ENCODINGS = struct.pack(">BxH", 2, 3) + struct.pack(">iii", 0, -223, -258)   # raw, DesktopSize, QEMU keys
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 1, 0, 0, 1280, 800)
KEY = struct.pack(">BBxxI", 4, 1, 0x61)
POINTER = struct.pack(">BBHH", 5, 0, 100, 200)
QEMU_KEY = struct.pack(">BBHII", 255, 0, 1, 0x61, 30)
CUT_TEXT = struct.pack(">BxxxI", 6, 5) + b"hello"
SET_DESKTOP_SIZE = struct.pack(">BxHHBx", 251, 1280, 800, 1) + bytes(16)
FENCE = struct.pack(">BxxxIB", 248, 0, 4) + b"abcd"
IDLE_TAB = HANDSHAKE + SET_PIXEL_FORMAT + SET_ENCODINGS + UPDATE_REQUEST * 50


def test_an_open_tab_without_input_is_not_input():
    watcher = RfbInputWatcher()
    assert watcher.feed(IDLE_TAB + CUT_TEXT + SET_DESKTOP_SIZE + FENCE) is False
    assert not watcher.lost


@pytest.mark.parametrize("message", [KEY, POINTER, QEMU_KEY])
def test_key_and_pointer_messages_are_input(message):
    watcher = RfbInputWatcher()
    assert watcher.feed(IDLE_TAB) is False
    assert watcher.feed(UPDATE_REQUEST + message + UPDATE_REQUEST) is True
    assert watcher.feed(UPDATE_REQUEST) is False


def test_messages_split_across_websocket_frames():
    stream = IDLE_TAB + SET_DESKTOP_SIZE + UPDATE_REQUEST + QEMU_KEY
    watcher = RfbInputWatcher()
    seen = [watcher.feed(stream[i:i + 7]) for i in range(0, len(stream), 7)]
    assert seen[-1] is True and not any(seen[:-2])


def test_a_password_less_display():
    watcher = RfbInputWatcher()
    assert watcher.feed(b"RFB 003.008\n" + bytes([1]) + bytes([1]) + POINTER) is True


def test_a_stream_it_cannot_follow_is_given_up_not_guessed():
    watcher = RfbInputWatcher()
    assert watcher.feed(IDLE_TAB + bytes([77, 0, 0, 0]) + KEY) is False
    assert watcher.lost and watcher.feed(KEY) is False
    vencrypt = RfbInputWatcher()
    assert vencrypt.feed(b"RFB 003.008\n" + bytes([19]) + KEY) is False and vencrypt.lost


def test_the_gateway_hook_records_input_once_in_a_while(tmp_path):
    hook = ConsoleInput.for_console(tmp_path / "console", "alice-desk")
    hook.feed([IDLE_TAB])
    assert console_input.last_input(tmp_path / "lifecycle", "alice-desk") is None
    hook.feed([UPDATE_REQUEST, KEY])
    first = console_input.last_input(tmp_path / "lifecycle", "alice-desk")
    assert first is not None
    console_input.record_input(tmp_path / "lifecycle", "alice-desk", at=first - 100)
    hook.feed([POINTER])                 # within RECORD_EVERY_S of the last record: no new write
    assert console_input.last_input(tmp_path / "lifecycle", "alice-desk") == first - 100


def test_recorded_time_is_read_back(tmp_path):
    console_input.record_input(tmp_path, "desk", at=1_700_000_000.5)
    assert console_input.last_input(tmp_path, "desk") == pytest.approx(1_700_000_000.5)
    assert console_input.last_input(tmp_path, "other") is None
