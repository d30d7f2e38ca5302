"""The end of a guest's serial console log, as the readiness gate quotes it when a guest never became reachable."""
from components.guest import console_log


def test_the_last_lines_come_without_terminal_escapes_or_blank_lines(tmp_path):
    log = tmp_path / "d1-console.log"
    log.write_bytes(b"[    0.000000] Linux version 6.1.0-28-amd64\r\n\r\n"
                    b"\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh.service\x1b[0m - OpenBSD Secure Shell.\r\n"
                    b"\x1b[?25l\x07Debian GNU/Linux 12 d1 ttyS0\r\n")
    assert console_log.last_lines(str(log)) == [
        "[    0.000000] Linux version 6.1.0-28-amd64",
        "  OK  ] Started ssh.service - OpenBSD Secure Shell.",
        "Debian GNU/Linux 12 d1 ttyS0"]


def test_only_the_files_tail_is_read_and_its_first_partial_line_dropped(tmp_path):
    log = tmp_path / "d1-console.log"
    log.write_text("".join(f"line {i:06d} {'x' * 80}\n" for i in range(20000)))     # ~1.8 MB
    lines = console_log.last_lines(str(log), count=3)
    assert [line.split()[1] for line in lines] == ["019997", "019998", "019999"]
    assert all(line.startswith("line ") for line in console_log.last_lines(str(log), count=10_000))


def test_no_log_declared_or_none_on_this_machine_quotes_nothing(tmp_path):
    assert console_log.last_lines(None) == []
    assert console_log.as_clause(str(tmp_path / "absent.log")) == ""
    (tmp_path / "empty.log").write_text("\r\n\n")
    assert console_log.as_clause(str(tmp_path / "empty.log")) == ""


def test_the_clause_names_the_file_and_indents_each_line(tmp_path):
    log = tmp_path / "d1-console.log"
    log.write_text("Begin: Loading essential drivers ... done.\nKernel panic - not syncing: VFS: Unable to mount root fs\n")
    assert console_log.as_clause(str(log)) == (
        f"; its serial console last printed ({log}):\n"
        "    Begin: Loading essential drivers ... done.\n"
        "    Kernel panic - not syncing: VFS: Unable to mount root fs")
