"""The guest's sessions as loginctl (systemd 252, Debian 12) and xprintidle print them, and what they mean."""
from components.lifecycle.activity import session_readings
from components.lifecycle.sessions import PROBE_SCRIPT, PROPERTIES, parse_probe

NOW_US = 1765094400_000000
HOST_NOW = 2_000_000_000.0

# loginctl show-session prints the properties in logind's order, and (asked by -p) the empty ones too.
GREETER = """Id=c1
Name=lightdm
TTY=tty7
Display=:0
Remote=no
Type=x11
Class=greeter
State=online
IdleHint=no
IdleSinceHint=0"""
XFCE = """Id=2
Name=alice
TTY=tty7
Display=:0
Remote=no
Type=x11
Class=user
State=active
IdleHint=no
IdleSinceHint=0
XIdleMs=754000"""
SSH_TTY = f"""Id=5
Name=alice
TTY=pts/0
Display=
Remote=yes
Type=tty
Class=user
State=active
IdleHint=no
IdleSinceHint={NOW_US - 90_000000}"""
SSH_COMMAND = """Id=7
Name=alice
TTY=
Display=
Remote=yes
Type=tty
Class=user
State=active
IdleHint=no
IdleSinceHint=0"""
CLOSING = f"""Id=4
Name=alice
TTY=pts/1
Display=
Remote=yes
Type=tty
Class=user
State=closing
IdleHint=no
IdleSinceHint={NOW_US}"""
MANAGER = """Id=3
Name=alice
TTY=
Display=
Remote=no
Type=unspecified
Class=manager
State=active
IdleHint=no
IdleSinceHint=0"""


def probe(*blocks):
    return f"Now={NOW_US}\n\n" + "\n\n".join(blocks) + "\n"


def test_probe_asks_for_every_property_it_reads():
    for prop in PROPERTIES:
        assert f"-p {prop}" in PROBE_SCRIPT


def test_user_sessions_only():
    sessions = parse_probe(probe(GREETER, XFCE, SSH_TTY, CLOSING, MANAGER))
    assert [s.id for s in sessions] == ["2", "5"]


def test_x_idle_time_for_a_graphical_session():
    [xfce] = parse_probe(probe(XFCE))
    assert xfce.graphical and not xfce.ssh and xfce.display == ":0"
    assert xfce.idle_for == 754.0


def test_an_ssh_terminal_is_idle_since_its_last_keystroke():
    [ssh] = parse_probe(probe(SSH_TTY))
    assert ssh.ssh and ssh.tty == "pts/0"
    assert ssh.idle_for == 90.0


def test_xfce_without_xprintidle_cannot_say():
    """Xfce never calls SetIdleHint: IdleHint=no with IdleSinceHint=0 means nobody keeps it, not 'active'."""
    [xfce] = parse_probe(probe(XFCE.replace("\nXIdleMs=754000", "")))
    assert xfce.idle_for is None
    [reading] = session_readings([xfce], HOST_NOW)
    assert not reading.known and "xprintidle" in reading.detail


def test_a_session_that_keeps_logind_hint():
    idle = XFCE.replace("\nXIdleMs=754000", "").replace("IdleHint=no", "IdleHint=yes").replace(
        "IdleSinceHint=0", f"IdleSinceHint={NOW_US - 600_000000}")
    assert parse_probe(probe(idle))[0].idle_for == 600.0
    busy = idle.replace("IdleHint=yes", "IdleHint=no")
    assert parse_probe(probe(busy))[0].idle_for == 0.0


def test_readings_from_the_guest():
    sessions = parse_probe(probe(GREETER, XFCE, SSH_TTY))
    graphical, ssh = session_readings(sessions, HOST_NOW)
    assert (graphical.source, graphical.last_input) == ("graphical", HOST_NOW - 754)
    assert (ssh.source, ssh.last_input) == ("ssh", HOST_NOW - 90)
    assert ssh.detail == "session 5 of alice on pts/0"


def test_an_ssh_command_without_a_terminal_is_in_use_while_it_runs():
    [ssh] = session_readings(parse_probe(probe(SSH_COMMAND)), HOST_NOW)
    assert ssh.last_input == HOST_NOW and "no terminal" in ssh.detail


def test_nobody_logged_in():
    assert session_readings(parse_probe(probe(GREETER)), HOST_NOW) == []
    assert session_readings(parse_probe(f"Now={NOW_US}\n"), HOST_NOW) == []


def test_not_the_probe():
    import pytest
    with pytest.raises(ValueError):
        parse_probe("sh: 1: loginctl: not found\n")
