"""Needs the curl program. The curl calls of the wire-format page, run against the quickstart's
handler, and what curl prints, as a terminal shows them.

The server takes a free port; the commands are printed with the quickstart's port, 5001. The
``--8<--`` lines mark the replies the page's section on status codes includes.
"""

import shlex
import shutil
import subprocess
import sys

from dataserve import HTTPDataHandler, serve

if shutil.which("curl") is None:
    sys.exit("this example needs the curl program: install it (apt-get install curl, for one)")


xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return xdata + payload
        elif resource == "/ydata":
            return 2
        return None


SHOWN = "http://127.0.0.1:5001"

COMMANDS = [  # each with the name of the part of the output its reply is, if it is one
    (f"curl -X PUT --data-binary '[4, 5, 6]' -H 'Content-Type: application/json' {SHOWN}/xdata", None),
    (f"curl -X PUT {SHOWN}/ydata", None),
    (f"curl -X PUT --data-binary '[4]' -H 'Content-Type: application/json' {SHOWN}/zdata", "not-found"),
    (
        f"curl -X PUT --data-binary 'abc' -H 'Content-Type: text/plain; charset=utf-8' {SHOWN}/xdata",
        "handler-error",
    ),
    (f"curl {SHOWN}/healthz", None),
]

print("The server logs the traceback of the failing call below to stderr.", file=sys.stderr)

with serve(MyDataHandler, port=0) as server:
    for command, part in COMMANDS:
        args = shlex.split(command.replace(SHOWN, server.url))
        result = subprocess.run(
            [*args, "--silent", "--show-error"], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        print("$", command)
        if part:
            print(f"# --8<-- [start:{part}]")
        print(result.stdout)  # the body, which ends without a newline
        if part:
            print(f"# --8<-- [end:{part}]")
