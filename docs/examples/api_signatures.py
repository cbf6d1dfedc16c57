"""The signatures of ``run_http_server``, ``serve``, ``create_app`` and the two clients, read from
dataserve itself: the handler and client pages show them from here, so that no option can be
left off a page.

The ``--8<--`` lines mark the part of this output that a page includes for each.
"""

import inspect
import textwrap

import dataserve

WIDTH = 100


def synopsis(function):
    """``function``'s name and parameters, as a call, wrapped under its opening parenthesis."""
    parameters = []
    keyword_only = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only:
            parameters.append("*")
            keyword_only = True
        if parameter.default is parameter.empty:
            parameters.append(parameter.name)
        else:
            parameters.append(f"{parameter.name}={parameter.default!r}")
    start = f"{function.__name__}("
    text = textwrap.fill(
        ", ".join(parameters) + ")",
        width=WIDTH,
        initial_indent=start,
        subsequent_indent=" " * len(start),
        break_on_hyphens=False,
    )
    return text


SHOWN = [
    dataserve.run_http_server,
    dataserve.serve,
    dataserve.create_app,
    dataserve.HTTPDataClient,
    dataserve.AsyncHTTPDataClient,
]

for function in SHOWN:
    print(f"# --8<-- [start:{function.__name__}]")
    print(synopsis(function))
    print(f"# --8<-- [end:{function.__name__}]")
