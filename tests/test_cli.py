"""The ``dataserve`` command: ``send`` in process against real servers, ``serve`` in real processes."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import dataserve
from dataserve._cli import main, show
from dataserve._cli_io import show_reply
from dataserve._codec import encode
from dataserve._progress import THRESHOLD, Progress, size
from dataserve._wire import Reply
from tests.conftest import EchoHandler, die_with_test, free_port, worker_pids

pytestmark = pytest.mark.usefixtures("server_lane")

ROOT = Path(__file__).parent.parent
SCRIPT = Path(sys.executable).parent / "dataserve"
TIMEOUT = 60.0
"""Seconds any process of these tests gets to start, answer or stop."""

TOKEN = "cli-test-token"
"""The token of the servers that need one."""


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps what is written to it."""

    def isatty(self) -> bool:
        return True


def send(server: dataserve.RunningServer, *args: str) -> int:
    return main(["send", "--url", server.url, *args])


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith("dataserve: error: "), err
    for fragment in fragments:
        assert fragment in err


# --- demo ---------------------------------------------------------------------------------------


def test_demo_serves_calls_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", "demo"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dataserve demo: serving DemoHandler on http://127.0.0.1:")
    assert "client.send('/xdata', [4, 5, 6]) -> [1, 2, 3, 4, 5, 6]" in lines
    assert "client.send('/ydata') -> 2" in lines
    assert "client.send('/upper', 'hello, dataserve') -> 'HELLO, DATASERVE'" in lines
    assert "client.send('/reverse', b'\\x00\\x01\\x02\\xff') -> b'\\xff\\x02\\x01\\x00'" in lines
    assert any(line.startswith("client.send('/nothing', {'a': 1}) -> ResourceNotFound:") for line in lines)
    assert lines[-1] == "dataserve demo: server stopped"


@pytest.mark.skipif(not SCRIPT.exists(), reason="dataserve is not installed as a console script here")
def test_console_script_runs_demo() -> None:
    result = subprocess.run([str(SCRIPT), "demo"], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "client.send('/ydata') -> 2" in result.stdout


def test_unknown_command_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
    assert "usage: dataserve" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"dataserve {dataserve.__version__}\n"


def test_demo_in_process_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "client.send('/ydata') -> 2" in capsys.readouterr().out


# --- send: payloads and replies -----------------------------------------------------------------


def test_send_pretty_prints_a_json_reply(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    value = {"rows": [1, 2.5, None], "name": "café"}
    assert send(server, "/echo", json.dumps(value)) == 0
    assert capsys.readouterr() == (json.dumps(value, indent=2, ensure_ascii=False) + "\n", "")


def test_send_prints_a_text_reply_as_it_is(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send(server, "/echo", "hello, dataserve") == 0
    assert capsys.readouterr() == ("hello, dataserve\n", "")


@pytest.mark.parametrize(
    ("args", "received"),
    [
        (["42"], "int"),
        (['"42"'], "str"),
        (["[1, 2]"], "list"),
        (["not json"], "str"),
        (["--text", "42"], "str"),
        (["--json", "42"], "int"),
        (["--json", "null"], "NoneType"),
        ([], "NoneType"),
    ],
)
def test_send_sends_value_as_json_if_it_parses_else_as_text(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], args: list[str], received: str
) -> None:
    assert send(server, "/type", *args) == 0
    assert capsys.readouterr().out == received + "\n"


def test_send_takes_options_before_between_and_after_its_arguments(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "--text", "/type", "--url", server.url, "42"]) == 0
    assert main(["send", "/type", "--text", "42", "--url", server.url]) == 0
    assert capsys.readouterr().out == "str\nstr\n"


def test_send_to_a_port_calls_localhost(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "/echo", "7", "--port", str(server.port)]) == 0
    assert capsys.readouterr().out == "7\n"


def test_send_file_sends_its_bytes_and_output_saves_the_reply(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = bytes(range(256)) * 10
    (tmp_path / "in.bin").write_bytes(data)
    out = tmp_path / "out.bin"
    assert send(server, "/echo", "--file", str(tmp_path / "in.bin"), "--output", str(out)) == 0
    assert out.read_bytes() == data
    assert capsys.readouterr() == ("", f"wrote 2,560 bytes to {out}\n")


def test_send_file_dash_reads_stdin(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00\xff")))
    assert send(server, "/type", "--file", "-") == 0
    assert capsys.readouterr().out == "bytes\n"


def test_bytes_reply_without_output_prints_a_summary_not_the_bytes(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "in.bin").write_bytes(b"\xff" * 1500)
    assert send(server, "/echo", "--file", str(tmp_path / "in.bin")) == 0
    assert capsys.readouterr() == ("<1,500 bytes; use --output PATH to save them>\n", "")


def test_output_dash_writes_bytes_to_stdout(
    server: dataserve.RunningServer, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    (tmp_path / "in.bin").write_bytes(b"\x00\x01\xfe\xff")
    assert send(server, "/echo", "--file", str(tmp_path / "in.bin"), "--output", "-") == 0
    assert capsysbinary.readouterr() == (b"\x00\x01\xfe\xff", b"")


def test_output_saves_what_would_print_for_other_replies(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "reply.json"
    assert send(server, "/echo", '{"a": [1, 2]}', "--output", str(out)) == 0
    printed = json.dumps({"a": [1, 2]}, indent=2) + "\n"
    assert out.read_text() == printed
    assert capsys.readouterr() == ("", f"wrote {len(printed)} bytes to {out}\n")


def test_a_reply_that_is_not_json_prints_as_its_repr(capsys: pytest.CaptureFixture[str]) -> None:
    show({1, 2}, None)
    assert capsys.readouterr().out == "{1, 2}\n"


# --- send: arrays and tables --------------------------------------------------------------------

try:
    import numpy as np
except ImportError:  # pragma: no cover - the test extra installs numpy
    np = None  # type: ignore[assignment]
try:
    import pandas as pd
    import pyarrow as pa
except ImportError:  # pragma: no cover - the test extra installs pandas and pyarrow
    pa = pd = None

needs_numpy = pytest.mark.skipif(np is None, reason="needs numpy: pip install numpy")
needs_tables = pytest.mark.skipif(pa is None, reason="needs pandas and pyarrow: pip install pandas pyarrow")


def arrow_stream(table: Any) -> bytes:
    """``table`` as an Arrow IPC stream, as any Arrow writer makes one."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@needs_numpy
def test_npy_sends_the_array_and_output_saves_the_reply_as_npy(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    array = np.arange(12, dtype=">i4").reshape(3, 4)
    np.save(tmp_path / "in.npy", array)
    assert send(server, "/type", "--npy", str(tmp_path / "in.npy")) == 0
    assert capsys.readouterr().out == "ndarray\n", "the handler gets the array, not bytes"
    out = tmp_path / "out.npy"
    assert send(server, "/echo", "--npy", str(tmp_path / "in.npy"), "--output", str(out)) == 0
    received = np.load(out, allow_pickle=False)
    assert received.dtype == array.dtype
    assert (received == array).all()
    assert capsys.readouterr() == ("", f"wrote {out.stat().st_size:,} bytes to {out}\n")


@needs_numpy
def test_array_reply_prints_its_shape_and_dtype(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "in.npy", np.zeros((1000, 3)))
    assert send(server, "/echo", "--npy", str(tmp_path / "in.npy")) == 0
    summary = (
        "<numpy.ndarray, shape (1000, 3), dtype float64, 24,000 bytes; use --output PATH to save it as .npy>"
    )
    assert capsys.readouterr() == (summary + "\n", "")


@needs_numpy
def test_array_reply_output_dash_writes_the_npy_to_stdout(
    server: dataserve.RunningServer, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    np.save(tmp_path / "in.npy", np.arange(3.0))
    assert send(server, "/echo", "--npy", str(tmp_path / "in.npy"), "-o", "-") == 0
    out, _ = capsysbinary.readouterr()
    assert np.load(io.BytesIO(out), allow_pickle=False).tolist() == [0.0, 1.0, 2.0]


@needs_tables
def test_arrow_sends_the_table_and_output_saves_the_reply_as_a_stream(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = pa.table({"n": [1, 2, None], "s": ["a", "b", "c"]})
    (tmp_path / "in.arrows").write_bytes(arrow_stream(table))
    assert send(server, "/type", "--arrow", str(tmp_path / "in.arrows")) == 0
    assert capsys.readouterr().out == "Table\n"
    out = tmp_path / "out.arrows"
    assert send(server, "/echo", "--arrow", str(tmp_path / "in.arrows"), "--output", str(out)) == 0
    assert pa.ipc.open_stream(out.read_bytes()).read_all().equals(table)
    assert capsys.readouterr() == ("", f"wrote {out.stat().st_size:,} bytes to {out}\n")


@needs_tables
def test_a_saved_dataframe_reply_is_sent_again_as_a_dataframe(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64")}, index=pd.Index(["x", "y"], name="k"))
    with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.send("/echo", frame).equals(frame)
    body, _ = encode(frame)
    (tmp_path / "frame.arrows").write_bytes(body)  # what --output writes of a DataFrame reply
    assert send(server, "/type", "--arrow", str(tmp_path / "frame.arrows")) == 0
    assert capsys.readouterr().out == "DataFrame\n"


@needs_tables
def test_arrow_takes_an_arrow_ipc_file_too(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = pa.table({"x": [1.5, 2.5]})
    with pa.ipc.new_file(tmp_path / "in.arrow", table.schema) as writer:
        writer.write_table(table)
    out = tmp_path / "out.arrows"
    assert send(server, "/echo", "--arrow", str(tmp_path / "in.arrow"), "-o", str(out)) == 0
    assert pa.ipc.open_stream(out.read_bytes()).read_all().equals(table)


@needs_tables
def test_table_reply_prints_its_rows_columns_and_schema(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {"n": [1, 2, 3], "when": pd.to_datetime([0, 1, 2], unit="s", utc=True).as_unit("ms")},
        index=pd.Index(["a", "b", "c"], name="key"),
    )
    body, _ = encode(frame)
    (tmp_path / "frame.arrows").write_bytes(body)
    assert send(server, "/echo", "--arrow", str(tmp_path / "frame.arrows")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "<pandas.DataFrame, 3 rows, 2 columns; use --output PATH to save it as an Arrow stream>",
        "n: int64",
        "when: timestamp[ms, tz=UTC]",
        f"key: {pa.Table.from_pandas(frame).schema.field('key').type} (index)",
    ]


def test_array_and_table_summaries_without_their_library_say_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    show_reply(Reply(200, {"content-type": "application/x-npy"}, b"\x93NUMPY" + bytes(100)), None)
    show_reply(Reply(200, {"content-type": "application/vnd.apache.arrow.stream"}, bytes(50)), None)
    assert capsys.readouterr().out.splitlines() == [
        "<a NumPy array of 106 bytes; install NumPy to see its shape and dtype "
        "(pip install numpy), or use --output PATH to save it as .npy>",
        "<an Arrow table of 50 bytes; install pyarrow to see its rows and schema "
        "(pip install pyarrow), or use --output PATH to save it as an Arrow stream>",
    ]


@needs_numpy
@pytest.mark.parametrize(
    ("option", "content", "fragments"),
    [
        ("--npy", b"not an array", ["is not a .npy array dataserve can send", "not a valid .npy array"]),
        ("--npy", "objects", ["is not a .npy array dataserve can send", "dataserve never unpickles"]),
        ("--arrow", b"not a table", ["is not an Arrow IPC stream or file"]),
        ("--arrow", b"ARROW1 truncated", ["is not an Arrow IPC stream or file"]),
    ],
    ids=["npy garbage", "npy of objects", "arrow garbage", "arrow file cut"],
)
def test_a_file_that_is_not_its_type_prints_one_line_and_exits_1(
    server: dataserve.RunningServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    option: str,
    content: bytes | str,
    fragments: list[str],
) -> None:
    path = tmp_path / "in.data"
    if content == "objects":
        np.save(path, np.array([1, None], dtype=object), allow_pickle=True)
        path = path.with_suffix(".data.npy")
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    assert send(server, "/echo", option, str(path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, str(path), *fragments)


# --- send: errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["/missing"], ["EchoHandler.handle_request returned None for '/missing', which means", "404"]),
        (["/fail", "3"], ["the handler failed on PUT", "ValueError: cannot handle 3"]),
        (["/set"], ["the handler failed on PUT", "PayloadError: EchoHandler.handle_request returned"]),
        (["/echo", "--text", "\udcff"], ["cannot send this str as UTF-8 text"]),
        (
            ["/echo", "--file", "no-such-file.bin"],
            ["cannot read no-such-file.bin: No such file or directory"],
        ),
    ],
)
def test_send_errors_print_one_line_and_exit_1(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], args: list[str], fragments: list[str]
) -> None:
    assert send(server, *args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, *fragments)


@pytest.mark.parametrize("port", [free_port(), 0], ids=["a free port", "port 0"])
def test_send_without_a_server_says_where_it_looked(capsys: pytest.CaptureFixture[str], port: int) -> None:
    assert main(["send", "/x", "--port", str(port)]) == 1
    assert_one_error_line(
        capsys.readouterr().err, f"cannot reach a dataserve server at http://localhost:{port}"
    )


class NotDataserve(http.server.BaseHTTPRequestHandler):
    """A web server that answers PUT with a page of HTML and status 501, and logs nothing."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_send_to_a_server_that_is_not_dataserve_says_what_it_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = http.server.HTTPServer(("127.0.0.1", 0), NotDataserve)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        assert main(["send", "/x", "--url", f"http://127.0.0.1:{other.server_port}"]) == 1
    finally:
        other.shutdown()
        other.server_close()
        thread.join(TIMEOUT)
    assert_one_error_line(
        capsys.readouterr().err,
        "501 Unsupported method ('PUT') from PUT",
        "not from a dataserve server",
        "<html",
    )


def test_send_gives_up_after_its_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with dataserve.serve(EchoHandler, port=0) as slow:
        assert send(slow, "/sleep", "1", "--timeout", "0.1") == 1
    assert_one_error_line(capsys.readouterr().err, "no reply from", "in time")


def test_send_cannot_write_output_says_why(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "no-such-dir" / "out.json"
    assert send(server, "/echo", "1", "--output", str(out)) == 1
    assert_one_error_line(capsys.readouterr().err, f"cannot write {out}: No such file or directory")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["send"], "the following arguments are required: RESOURCE"),
        (["send", "/x", "1", "--file", "in.bin"], "give either VALUE or --file, not both"),
        (["send", "/x", "1", "--npy", "in.npy"], "give either VALUE or --npy, not both"),
        (["send", "/x", "1", "--arrow", "in.arrows"], "give either VALUE or --arrow, not both"),
        (["send", "/x", "--npy", "a.npy", "--arrow", "b.arrows"], "not allowed with argument"),
        (["send", "/x", "--json"], "--json needs a VALUE"),
        (["send", "/x", "--text"], "--text needs a VALUE"),
        (["send", "/x", "--json", "{"], "argument --json: VALUE is not valid JSON"),
        (["send", "/x", "--json", "1", "--text"], "not allowed with argument"),
        (["send", "/x", "--url", "http://10.0.0.2:"], "ends in a colon"),
        (["send", "/x", "--port", "5001", "--url", "http://h"], "not allowed with argument"),
        (["send", "/x", "--port", "http"], "'http' is not a port number"),
        (["send", "/x", "--timeout", "-1"], "'-1' is not a number of seconds"),
        (["serve"], "the following arguments are required: MODULE:CLASS"),
        (["serve", "m:C", "--workers", "0"], "'0' is not a whole number of 1 or more"),
        (["serve", "m:C", "--max-concurrency", "many"], "'many' is not a whole number of 1 or more"),
        (["serve", "m:C", "--port", "70000"], "'70000' is not a port number"),
        (["serve", "m:C", "--log-level", "loud"], "invalid choice: 'loud'"),
        (["serve", "m:C", "--token"], "argument --token: expected one argument"),
        (["serve", "m:C", "--max-body-size", "1k"], "'1k' is not a number of bytes"),
        (["send", "/x", "--token"], "argument --token: expected one argument"),
        (["send", "/x", "--cafile", "ca.pem", "--insecure"], "not allowed with argument"),
    ],
)
def test_wrong_arguments_print_usage_and_one_error_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: dataserve {argv[0]} ")
    last = err.splitlines()[-1]
    assert last.startswith(f"dataserve {argv[0]}: error: ")
    assert message in last


# --- send: token and HTTPS ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(server_lane: str) -> Iterator[dataserve.RunningServer]:
    """A real server of EchoHandler that answers only calls carrying TOKEN."""
    with dataserve.serve(EchoHandler, port=0, token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA, and a certificate and key it signed for 127.0.0.1 and localhost."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    files = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    authority.cert_pem.write_to_path(str(files["ca"]))
    certificate.cert_chain_pems[0].write_to_path(str(files["cert"]))
    certificate.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture(scope="module")
def https_server(server_lane: str, tls_files: dict[str, Path]) -> Iterator[dataserve.RunningServer]:
    """A real HTTPS server of EchoHandler, with the certificate of ``tls_files``."""
    with dataserve.serve(
        EchoHandler, port=0, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]
    ) as running:
        yield running


@pytest.fixture
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATASERVE_TOKEN", raising=False)


@pytest.mark.usefixtures("no_token_in_env")
def test_send_token_is_answered_by_a_server_that_needs_it(
    guarded: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send(guarded, "/echo", "[1, 2]", "--token", TOKEN) == 0
    assert capsys.readouterr() == ("[\n  1,\n  2\n]\n", "")


@pytest.mark.usefixtures("no_token_in_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "this server needs a token: send the header 'Authorization: Bearer <token>'"),
        (["--token", "not-the-token"], "the token is wrong"),
    ],
)
def test_send_without_the_servers_token_prints_one_line_and_exits_1(
    guarded: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert send(guarded, "/echo", "1", *args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, message, f"(401 from PUT {guarded.url}/echo)")


def test_send_takes_the_token_from_the_environment(
    guarded: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASERVE_TOKEN", TOKEN)
    assert send(guarded, "/echo", "from the environment") == 0
    assert capsys.readouterr().out == "from the environment\n"


def test_send_cafile_verifies_an_https_servers_certificate(
    https_server: dataserve.RunningServer, tls_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert https_server.url.startswith("https://")
    assert send(https_server, "/echo", "secret", "--cafile", str(tls_files["ca"])) == 0
    assert capsys.readouterr() == ("secret\n", "")


def test_send_insecure_skips_the_certificate_check(
    https_server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send(https_server, "/echo", "unchecked", "--insecure") == 0
    assert capsys.readouterr() == ("unchecked\n", "")


def test_send_refuses_an_https_server_it_cannot_verify(
    https_server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send(https_server, "/echo", "1") == 1
    assert_one_error_line(
        capsys.readouterr().err,
        f"cannot verify the certificate of {https_server.url}",
        "CERTIFICATE_VERIFY_FAILED",
    )


# --- send: progress bar -------------------------------------------------------------------------


def test_large_transfers_draw_a_progress_bar_on_a_terminal(
    server: dataserve.RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "in.bin").write_bytes(b"\x07" * (2 * THRESHOLD))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = tmp_path / "out.bin"
    assert send(server, "/echo", "--file", str(tmp_path / "in.bin"), "--output", str(out)) == 0
    assert out.read_bytes() == b"\x07" * (2 * THRESHOLD)
    lines = terminal.getvalue().split("\n")
    assert len(lines) == 4, lines
    upload, download, wrote, end = lines
    for line, label in [(upload, "upload"), (download, "download")]:
        assert line.startswith(f"\r{label} ")
        last_draw = line.rpartition("\r")[2]
        assert f"[{'#' * 24}] 100%  2.0 MiB / 2.0 MiB  " in last_draw
        assert last_draw.endswith("/s\x1b[K")  # what a longer drawing before left is cleared
    assert (wrote, end) == (f"wrote 2,097,152 bytes to {out}", "")


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "in.bin").write_bytes(b"\x07" * (2 * THRESHOLD))
    assert send(server, "/echo", "--file", str(tmp_path / "in.bin")) == 0
    assert capsys.readouterr() == ("<2,097,152 bytes; use --output PATH to save them>\n", "")


def test_no_progress_bar_for_small_transfers(
    server: dataserve.RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert send(server, "/echo", "x" * 1000) == 0
    assert terminal.getvalue() == ""


def test_progress_bar_needs_a_known_total() -> None:
    terminal = Terminal()
    with Progress("download", None, terminal) as progress:
        progress.update(10 * THRESHOLD)
    assert terminal.getvalue() == ""


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (THRESHOLD, "1.0 MiB"),
        (5 * 1024 * THRESHOLD, "5.0 GiB"),
    ],
)
def test_sizes_read_in_binary_units(count: int, shown: str) -> None:
    assert size(count) == shown


# --- serve --------------------------------------------------------------------------------------


class ServeProcess:
    """``python -m dataserve serve ...`` in its own process, with the port its first line names."""

    def __init__(self, *args: str, cwd: Path = ROOT, command: list[str] | None = None) -> None:
        command = command or [sys.executable, "-m", "dataserve"]
        self.process = subprocess.Popen(
            [*command, "serve", *args, "--port", "0"],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_test,
        )
        self.first_line = _read_line(self.process)
        served = re.search(r" on (https?://127\.0\.0\.1:(\d+)) ", self.first_line)
        assert served, self.first_line
        self.url, self.port = served.group(1), int(served.group(2))

    def send(self, capsys: pytest.CaptureFixture[str], *args: str) -> str:
        assert main(["send", "--port", str(self.port), *args]) == 0
        out: str = capsys.readouterr().out
        return out

    def interrupt(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=TIMEOUT)


def _env() -> dict[str, str]:
    """The environment with this checkout's dataserve first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _read_line(process: subprocess.Popen[str]) -> str:
    """The process's first line of stdout, waiting at most TIMEOUT seconds for it."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(TIMEOUT):
            process.kill()
            _, err = process.communicate(timeout=TIMEOUT)
            pytest.fail(f"no line from {process.args!r} in {TIMEOUT} s; stderr:\n{err}")
    line = process.stdout.readline()
    if not line:
        _, err = process.communicate(timeout=TIMEOUT)
        pytest.fail(f"{process.args!r} exited with {process.returncode} before serving; stderr:\n{err}")
    return line


@pytest.fixture
def serving() -> Iterator[list[ServeProcess]]:
    """The serve processes a test starts, killed at its end if the test has not stopped them."""
    processes: list[ServeProcess] = []
    yield processes
    for process in processes:
        process.kill()


def test_serve_prints_its_port_answers_send_and_stops_on_ctrl_c(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    server = ServeProcess("tests.cli_handlers:PidHandler")
    serving.append(server)
    assert server.first_line == (
        f"dataserve: serving PidHandler on http://127.0.0.1:{server.port} (press Ctrl-C to stop)\n"
    )
    assert server.send(capsys, "/pid") == f"{server.process.pid}\n"
    assert server.send(capsys, "/echo", "[1, 2]") == "[\n  1,\n  2\n]\n"
    status, out, err = server.interrupt()
    assert status == 0, err
    assert out == "dataserve: stopped\n"
    assert "Traceback" not in err


def test_ctrl_c_the_moment_the_first_line_is_printed_stops_quietly(serving: list[ServeProcess]) -> None:
    server = ServeProcess("tests.cli_handlers:PidHandler")
    serving.append(server)
    status, out, err = server.interrupt()  # before uvicorn's loop has started, most likely
    assert (status, out, err) == (0, "dataserve: stopped\n", "")


def test_serve_workers_answer_from_separate_processes(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    server = ServeProcess("tests.cli_handlers:PidHandler", "--workers", "2")
    serving.append(server)
    assert "with 2 workers" in server.first_line
    assert server.send(capsys, "/pid").strip().isdigit()
    pids = worker_pids(server.port)
    assert len(pids) == 2
    assert server.process.pid not in pids
    status, _, err = server.interrupt()
    assert status == 0, err


def test_serve_access_log_prints_a_line_per_call_with_its_time(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    server = ServeProcess("tests.cli_handlers:PidHandler", "--access-log")
    serving.append(server)
    server.send(capsys, "/echo", "hello")
    status, out, err = server.interrupt()
    assert status == 0, err
    lines = [line for line in out.splitlines() if '"PUT /echo"' in line]
    assert len(lines) == 1, out
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} 127\.0\.0\.1:\d+ "PUT /echo" 200 \d+\.\d\d ms in=5 out=5',
        lines[0],
    ), lines[0]


def test_serve_metrics_with_workers_count_the_calls_of_every_worker(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("prometheus_client")
    server = ServeProcess("tests.cli_handlers:PidHandler", "--workers", "2", "--metrics")
    serving.append(server)
    assert len(worker_pids(server.port)) == 2  # both workers are up, and have answered calls

    def scrape() -> dict[str, float]:
        with socket.create_connection(
            ("127.0.0.1", server.port), timeout=TIMEOUT
        ) as sock:  # a new connection
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b"".join(iter(lambda: sock.recv(65536), b""))
        text = reply.split(b"\r\n\r\n", 1)[1].decode()
        found = dict.fromkeys(["calls", "ready"], 0.0)
        for line in text.splitlines():
            if line.startswith("dataserve_calls_total{"):
                found["calls"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith("dataserve_ready "):
                found["ready"] = float(line.rsplit(" ", 1)[1])
        return found

    before = scrape()
    assert before["ready"] == 2
    for _ in range(20):  # fresh connections, which the two workers share
        with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:", timeout=TIMEOUT) as client:
            client.send("/pid")
    after = [scrape() for _ in range(4)]  # whichever worker answers, it counts them all
    assert [scraped["calls"] - before["calls"] for scraped in after] == [20] * 4
    status, _, err = server.interrupt()
    assert status == 0, err


def test_serve_debug_sends_the_handler_traceback_to_send(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    server = ServeProcess("tests.cli_handlers:PidHandler", "--debug")
    serving.append(server)
    assert main(["send", "--port", str(server.port), "/fail", "7"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError(f"cannot handle {payload!r}")' in err
    assert err.splitlines()[-1] == (
        f"dataserve: error: the handler failed on PUT http://localhost:{server.port}/fail: "
        "ValueError: cannot handle 7"
    )


@pytest.mark.parametrize(("options", "replies"), [(["--max-concurrency", "2"], {"met"}), ([], {"alone"})])
def test_serve_max_concurrency_lets_calls_run_at_once(
    serving: list[ServeProcess], options: list[str], replies: set[str]
) -> None:
    server = ServeProcess("tests.cli_handlers:MeetHandler", *options)
    serving.append(server)
    # With two calls allowed at once they meet, however long it takes; with one, neither can.
    wait = "30" if replies == {"met"} else "0.2"
    results: list[str] = []

    def call() -> None:
        with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            results.append(client.send("/meet", float(wait)))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(results) == 2
    assert set(results) == replies


def test_serve_max_body_size_refuses_a_larger_file_with_413(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = ServeProcess("tests.cli_handlers:PidHandler", "--max-body-size", "1024")
    serving.append(server)
    (tmp_path / "small.bin").write_bytes(b"\x01" * 1024)
    (tmp_path / "large.bin").write_bytes(b"\x01" * 2048)
    assert server.send(capsys, "/echo", "--file", str(tmp_path / "small.bin")) == (
        "<1,024 bytes; use --output PATH to save them>\n"
    )
    assert main(["send", "--port", str(server.port), "/echo", "--file", str(tmp_path / "large.bin")]) == 1
    assert_one_error_line(
        capsys.readouterr().err,
        "the body is larger than this server takes (1,024 bytes)",
        f"(413 from PUT http://localhost:{server.port}/echo)",
    )
    status, _, err = server.interrupt()
    assert status == 0, err


@pytest.mark.usefixtures("no_token_in_env")
def test_serve_with_a_token_and_a_certificate_answers_send_with_both(
    serving: list[ServeProcess], capsys: pytest.CaptureFixture[str], tls_files: dict[str, Path]
) -> None:
    server = ServeProcess(
        "tests.cli_handlers:PidHandler",
        "--token",
        TOKEN,
        "--ssl-certfile",
        str(tls_files["cert"]),
        "--ssl-keyfile",
        str(tls_files["key"]),
    )
    serving.append(server)
    assert server.url == f"https://127.0.0.1:{server.port}"
    trusted = ["send", "--url", server.url, "--cafile", str(tls_files["ca"]), "/echo", "7"]
    assert main([*trusted, "--token", TOKEN]) == 0
    assert capsys.readouterr().out == "7\n"
    assert main(trusted) == 1
    assert_one_error_line(capsys.readouterr().err, "this server needs a token", "401 from PUT")
    status, _, err = server.interrupt()
    assert status == 0, err


@pytest.mark.parametrize(
    "options",
    [["--ssl-certfile", "cert.pem"], ["--ssl-keyfile", "key.pem"]],
    ids=["certfile-alone", "keyfile-alone"],
)
def test_serve_a_certificate_without_its_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, options: list[str]
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as info:
        main(["serve", "tests.cli_handlers:PidHandler", "--port", "0", *options])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: dataserve serve ")
    assert err.splitlines()[-1] == "dataserve serve: error: give --ssl-certfile and --ssl-keyfile together"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.no_such_module:Handler", "cannot import module 'tests.no_such_module'"),
        ("tests.cli_handlers:Missing", "module 'tests.cli_handlers' has no 'Missing'"),
        ("tests.cli_handlers:NotAHandler", "not a subclass of dataserve.HTTPDataHandler"),
        ("tests.cli_handlers", "is not an import path: write it as module:ClassName"),
    ],
)
def test_serve_a_wrong_import_path_prints_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: str, message: str
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["serve", path, "--port", "0"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, message)


def test_serve_on_a_port_in_use_prints_one_line_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "tests.cli_handlers:PidHandler", "--port", str(port)]) == 1
    assert_one_error_line(capsys.readouterr().err, f"cannot listen on 127.0.0.1:{port}")


def test_serve_a_module_that_fails_to_import_in_a_process(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no model here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", "serve", "broken:Handler"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_error_line(
        result.stderr, "importing 'broken' of 'broken:Handler' raised RuntimeError: no model here"
    )


def test_serve_a_handler_whose_setup_fails_exits_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", "serve", "tests.cli_handlers:FailingSetupHandler", "--port", "0"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "dataserve: error: FailingSetupHandler.setup() failed (RuntimeError: the model file is missing); "
        "the server did not start"
    )


@pytest.mark.skipif(not SCRIPT.exists(), reason="dataserve is not installed as a console script here")
def test_console_script_serves_a_module_of_the_current_directory(
    serving: list[ServeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "here.py").write_text(
        textwrap.dedent(
            """
            from dataserve import HTTPDataHandler

            class Here(HTTPDataHandler):
                def handle_request(self, resource, payload):
                    return "here"
            """
        )
    )
    server = ServeProcess("here:Here", cwd=tmp_path, command=[str(SCRIPT)])
    serving.append(server)
    assert server.send(capsys, "/anything") == "here\n"
    status, _, err = server.interrupt()
    assert status == 0, err
