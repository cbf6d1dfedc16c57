"""What ``dataserve --version``, ``dataserve serve --help`` and ``dataserve send --help`` print,
run for real: the command-line page shows the version, and the usage of each command, from here.

argparse wraps the help to the terminal's width: here 100 columns. The ``--8<--`` lines mark the
parts of this output the page includes.
"""

import os
import shlex
import subprocess
import sys

ENV = {name: value for name, value in os.environ.items() if name not in ("FORCE_COLOR", "PYTHON_COLORS")}
ENV["COLUMNS"] = "100"


def dataserve(*args):
    """Run ``dataserve ARGS...`` (here as ``python -m dataserve``) and return what it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", *args], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


print("# --8<-- [start:version]")
print("$ dataserve --version")
print(dataserve("--version"), end="")
print("# --8<-- [end:version]")

for command in ["serve", "send"]:
    # The usage, the help's first paragraph, is the page's synopsis of the command.
    usage, _, rest = dataserve(command, "--help").partition("\n\n")
    assert usage.startswith(f"usage: dataserve {command} ["), usage
    print("$", shlex.join(["dataserve", command, "--help"]))
    print(f"# --8<-- [start:{command}-usage]")
    print(usage)
    print(f"# --8<-- [end:{command}-usage]")
    print()
    print(rest, end="")
