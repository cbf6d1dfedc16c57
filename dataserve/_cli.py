"""The ``dataserve`` command: ``serve`` a handler, ``send`` a call to a server, or run the ``demo``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from ._app import DEFAULT_MAX_BODY_SIZE
from ._cli_io import arrow_body, npy_body, read, show, show_reply
from ._client import DEFAULT_TIMEOUT, HTTPDataClient
from ._codec import encode
from ._errors import DataServeError, RemoteError
from ._handler import HTTPDataHandler, import_handler
from ._limits import Limits
from ._progress import call
from ._server import run_http_server, serve
from ._token import TOKEN_ENV
from ._url import base_url

__all__ = ["main", "show"]

DEFAULT_PORT = 5001
"""The port ``serve`` listens on and ``send`` calls when none is given, as in the seed's example."""

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class UsageError(Exception):
    """An argument that parses but makes no sense with the others: reported with the usage."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dataserve`` command with ``argv`` and return its exit status."""
    args = parse(sys.argv[1:] if argv is None else list(argv))
    try:
        status: int = args.run(args)
        return status
    except UsageError as exc:
        parser: argparse.ArgumentParser = args.parser
        parser.error(str(exc))
    except DataServeError as exc:
        if isinstance(exc, RemoteError) and exc.remote_traceback:
            print(exc.remote_traceback.rstrip(), file=sys.stderr)  # The server runs with --debug.
        print(f"dataserve: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dataserve: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``dataserve send ... | head``): say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; ``send`` takes its options before, between or after its positionals."""
    parser, send_parser = _parsers()
    if argv[:1] == ["send"]:
        return send_parser.parse_intermixed_args(argv[1:])
    return parser.parse_args(argv)


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``dataserve`` parser, and that of its ``send`` command."""
    parser = argparse.ArgumentParser(prog="dataserve", description="Serve Python data over HTTP.")
    parser.add_argument("--version", action="version", version=f"dataserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve",
        help="serve a handler class, given by its import path, until Ctrl-C",
        description="Serve the handler class at MODULE:CLASS until Ctrl-C or SIGTERM.",
    )
    serve_parser.add_argument(
        "handler", metavar="MODULE:CLASS", help="the handler's import path, such as mymodule:MyHandler"
    )
    serve_parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default %(default)s)"
    )
    listen = serve_parser.add_mutually_exclusive_group()
    listen.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="the port to listen on; 0 picks a free one (default %(default)s)",
    )
    listen.add_argument(
        "--uds",
        metavar="PATH",
        help="listen on this Unix socket instead of a port, for the processes of this machine (mode 0600)",
    )
    serve_parser.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="worker processes sharing the port (default 1)",
    )
    serve_parser.add_argument(
        "--max-concurrency",
        type=_positive,
        default=1,
        metavar="N",
        help="calls of a plain handle_request run at once in each worker (default 1)",
    )
    serve_parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="warning",
        metavar="LEVEL",
        help=f"the HTTP server's log level: {', '.join(LOG_LEVELS)} (default warning)",
    )
    serve_parser.add_argument(
        "--debug", action="store_true", help="send a failing handler's traceback back to the caller"
    )
    serve_parser.add_argument(
        "--token",
        help=f"answer only calls that carry this token (default ${TOKEN_ENV}; other users can see "
        "a command line, so prefer the variable)",
    )
    serve_parser.add_argument(
        "--max-body-size",
        type=_size,
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help="refuse larger bodies with 413; none takes any size (default %(default)s)",
    )
    balanced = serve_parser.add_argument_group("behind a load balancer (see docs/scale-out.md)")
    balanced.add_argument(
        "--drain-timeout",
        type=_drain,
        default=0.0,
        metavar="SECONDS",
        help="on Ctrl-C or SIGTERM, say stopping on /healthz while still serving calls for this long, "
        "then stop (default 0)",
    )
    balanced.add_argument(
        "--refuse-while-loading",
        action="store_true",
        help="answer calls that come while setup() runs with 503 at once, instead of making them wait",
    )
    seen = serve_parser.add_argument_group("observability and browsers (see docs/observability.md)")
    seen.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per call to standard output: client, method, resource, status, time, bytes",
    )
    seen.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at GET /metrics (needs prometheus-client); behind --token, "
        "/metrics needs the token too",
    )
    seen.add_argument(
        "--open-metrics",
        action="store_true",
        help="serve /metrics without the token, to a scraper that has none (implies --metrics)",
    )
    seen.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages from ORIGIN (such as https://app.example.com, or *) call the server from a "
        "browser; repeat for more",
    )
    _add_limits(serve_parser.add_argument_group("limits (see docs/security.md)"))
    serve_parser.add_argument("--ssl-certfile", metavar="PATH", help="serve HTTPS with this certificate")
    serve_parser.add_argument("--ssl-keyfile", metavar="PATH", help="the private key of --ssl-certfile")
    serve_parser.set_defaults(run=serve_command, parser=serve_parser)

    send_parser = commands.add_parser(
        "send",
        help="call a server and print its reply",
        description="Send VALUE to RESOURCE on a dataserve server and print the reply. "
        "Without --json, --text or a file, a VALUE that is valid JSON is sent as JSON, any other as text; "
        "without a VALUE the payload is None. A reply of bytes, an array or a table prints as a summary; "
        "--output saves it as it came (bytes, the .npy file, the Arrow IPC stream).",
    )
    send_parser.add_argument("resource", metavar="RESOURCE", help="the resource to call, such as /xdata")
    send_parser.add_argument("value", metavar="VALUE", nargs="?", help="the payload")
    where = send_parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=_port, help=f"call http://localhost:PORT (default {DEFAULT_PORT})")
    where.add_argument("--url", help="call the server at this base URL, such as http://10.0.0.2:5001")
    where.add_argument("--uds", metavar="PATH", help="call the server listening on this Unix socket")
    kind = send_parser.add_mutually_exclusive_group()
    kind.add_argument("--json", action="store_true", help="send VALUE as JSON; it must be valid JSON")
    kind.add_argument("--text", action="store_true", help="send VALUE as text, even if it is valid JSON")
    kind.add_argument(
        "--file", metavar="PATH", help="send the bytes of the file PATH (- for stdin), not a VALUE"
    )
    kind.add_argument(
        "--npy", metavar="PATH", help="send the array of the .npy file PATH (- for stdin) as a NumPy array"
    )
    kind.add_argument(
        "--arrow",
        metavar="PATH",
        help="send the table of the Arrow IPC stream or file PATH (- for stdin) as a table",
    )
    send_parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="write the reply to PATH (an array as .npy, a table as an Arrow IPC stream); "
        "- writes it to stdout",
    )
    send_parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait to connect, to send and for the reply; 0 waits for ever (default %(default)s)",
    )
    send_parser.add_argument("--token", help=f"the server's token (default ${TOKEN_ENV})")
    send_parser.add_argument(
        "--post",
        action="store_true",
        help="send the call as POST, not PUT: a proxy in front of the server never sends it twice",
    )
    trust = send_parser.add_mutually_exclusive_group()
    trust.add_argument("--cafile", metavar="PATH", help="check an HTTPS server's certificate against this CA")
    trust.add_argument(
        "--insecure", action="store_true", help="do not check an HTTPS server's certificate at all"
    )
    send_parser.set_defaults(run=send_command, parser=send_parser)

    demo_parser = commands.add_parser(
        "demo", help="start a server on a free port, call it as the docs do, and stop"
    )
    demo_parser.set_defaults(run=lambda args: demo(), parser=demo_parser)
    return parser, send_parser


_LIMIT_HELP = {
    "max_json_size": "refuse larger JSON bodies with 413",
    "max_memory": "bytes of bodies and replies held at once, over all calls; past it calls get 503",
    "max_queue": "calls waiting for the handler at once; past it calls get 503",
    "max_connections": "connections open at once; past it a connection gets 503 and is closed",
    "max_head_size": "bytes of a request's line and headers; past it 431 (414 for the request line)",
    "max_target_size": "bytes of a request's path and query; past it 414",
    "head_timeout": "seconds a request's whole head may take to come",
    "min_body_rate": "bytes a second below which a body being sent is given up",
    "min_send_rate": "bytes a second below which a client taking a reply is given up",
}
"""The help of each Limits field's option, ``--max-json-size`` for ``max_json_size``."""


def _add_limits(group: argparse._ArgumentGroup) -> None:
    """An option for each of the server's Limits, with its default."""
    defaults = Limits()
    for field in dataclasses.fields(Limits):
        default = getattr(defaults, field.name)
        kind: Callable[[str], object]
        if field.name == "head_timeout":
            kind, metavar = _seconds, "SECONDS"
        elif field.name in ("max_queue", "max_connections", "max_head_size", "max_target_size"):
            kind, metavar = _positive, "N" if field.name in ("max_queue", "max_connections") else "BYTES"
        else:
            kind, metavar = _size, "BYTES" if "rate" not in field.name else "BYTES/S"
        optional = "; none turns it off" if kind is _size else ""
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=kind,
            default=default,
            metavar=metavar,
            help=f"{_LIMIT_HELP[field.name]}{optional} (default {default})",
        )


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _size(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes, nor none (any size)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


def _drain(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 for no drain)")
    return seconds


def _timeout(text: str) -> float | None:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 waits for ever)")
    return seconds or None


def serve_command(args: argparse.Namespace) -> int:
    """Serve the handler at ``args.handler``, checked to import before anything starts."""
    # As ``python -m`` does, so that a module in the current directory imports from the console script too.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import_handler(args.handler)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise UsageError("give --ssl-certfile and --ssl-keyfile together")
    run_http_server(
        None if args.uds is not None else args.port,
        args.handler,
        host=args.host,
        uds=args.uds,
        debug=args.debug,
        log_level=args.log_level,
        max_concurrency=args.max_concurrency,
        workers=args.workers,
        token=args.token,
        max_body_size=args.max_body_size,
        limits=Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Limits)}),
        drain_timeout=args.drain_timeout,
        refuse_while_loading=args.refuse_while_loading,
        access_log=args.access_log,
        metrics=args.metrics or args.open_metrics,
        open_metrics=args.open_metrics,
        cors_origins=args.cors_origin,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def send_command(args: argparse.Namespace) -> int:
    """Send the payload the arguments give, and print or save the reply."""
    try:
        if args.uds is not None:
            url = "http://localhost"
        elif args.url is None:
            url = base_url(DEFAULT_PORT if args.port is None else args.port, "http://localhost:")
        else:
            url = base_url(None, args.url)
    except ValueError as exc:
        raise UsageError(f"argument --url: {exc}") from None
    body, content_type = _body(args)
    verify = False if args.insecure else args.cafile or True
    reply = call(
        url,
        args.resource,
        body,
        content_type,
        timeout=args.timeout,
        token=args.token,
        verify=verify,
        uds=args.uds,
        method="POST" if args.post else "PUT",
    )
    show_reply(reply, args.output)
    return 0


def _body(args: argparse.Namespace) -> tuple[bytes, str]:
    """The body and Content-Type of the payload the arguments give."""
    for option, body in (("npy", npy_body), ("arrow", arrow_body)):
        path = getattr(args, option)
        if path is not None:
            if args.value is not None:
                raise UsageError(f"give either VALUE or --{option}, not both")
            return body(path)
    return encode(_payload(args))


def _payload(args: argparse.Namespace) -> Any:
    if args.file is not None:
        if args.value is not None:
            raise UsageError("give either VALUE or --file, not both")
        return read(args.file)
    if args.value is None:
        if args.json or args.text:
            raise UsageError(f"--{'json' if args.json else 'text'} needs a VALUE")
        return None
    if args.text:
        return args.value
    try:
        return json.loads(args.value)
    except ValueError as exc:
        if args.json:
            raise UsageError(f"argument --json: VALUE is not valid JSON: {exc}") from None
        return args.value


class DemoHandler(HTTPDataHandler):
    """The handler of the quickstart example."""

    def __init__(self) -> None:
        self.xdata = [1, 2, 3]

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/xdata":
            return self.xdata + payload
        elif resource == "/ydata":
            return 2
        elif resource == "/upper":
            return payload.upper()
        elif resource == "/reverse":
            return payload[::-1]
        return None


def demo() -> int:
    """Serve DemoHandler in the background, print a few calls and their replies, and stop."""
    calls: list[tuple[str, Any]] = [
        ("/xdata", [4, 5, 6]),
        ("/ydata", None),
        ("/upper", "hello, dataserve"),
        ("/reverse", b"\x00\x01\x02\xff"),
        ("/nothing", {"a": 1}),
    ]
    with serve(DemoHandler, port=0) as server:
        print(f"dataserve demo: serving DemoHandler on {server.url}")
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            for resource, payload in calls:
                shown = (
                    f"client.send({resource!r})"
                    if payload is None
                    else f"client.send({resource!r}, {payload!r})"
                )
                try:
                    print(f"{shown} -> {client.send(resource, payload)!r}")
                except DataServeError as exc:
                    print(f"{shown} -> {type(exc).__name__}: {exc}")
    print("dataserve demo: server stopped")
    return 0
