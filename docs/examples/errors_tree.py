"""The exceptions dataserve raises to its callers, found in the code: DataServeError and its
subclasses, walked with __subclasses__() and printed as a tree, each with what it stands for."""

import dataserve
from dataserve import DataServeError

MEANING = {
    "ResourceNotFound": "404: the handler returned None for the resource",
    "RemoteError": "500: the handler raised, or returned a value that cannot be sent",
    "PayloadError": "a value that cannot be sent; 400, 413 or 415 from the server",
    "AuthenticationError": "401: the server needs a token, or the one sent is wrong",
    "ServerUnavailable": "connection refused, reset, or no reply in time; 503 from the server",
}
"""What each exception stands for: one that is not here stops this example until it is."""


def descendants(cls, depth=1):
    """Each subclass of ``cls``, at any depth, with its depth, in the order they were defined."""
    for subclass in cls.__subclasses__():
        yield subclass, depth
        yield from descendants(subclass, depth + 1)


# Import everything dataserve exports, and so every module that could define an exception.
exported = {getattr(dataserve, name) for name in dataserve.__all__}
found = dict(descendants(DataServeError))
assert sorted(MEANING) == sorted(cls.__name__ for cls in found), "say in MEANING what each one means"
# Each of them can be imported from dataserve, and each exception dataserve exports is one of them.
assert all(getattr(dataserve, cls.__name__) is cls for cls in found)
assert {cls for cls in exported if isinstance(cls, type) and issubclass(cls, BaseException)} == {
    DataServeError,
    *found,
}
width = max(4 * depth + len(cls.__name__) for cls, depth in found.items())


def show(cls, indent=""):
    """Print the subclasses of ``cls`` as the branches of a tree, each line starting with ``indent``."""
    subclasses = cls.__subclasses__()
    for number, subclass in enumerate(subclasses, 1):
        last = number == len(subclasses)
        branch = indent + ("└── " if last else "├── ")
        print(f"{branch}{subclass.__name__:<{width - len(branch)}}  {MEANING[subclass.__name__]}")
        show(subclass, indent + ("    " if last else "│   "))


print(DataServeError.__name__)
show(DataServeError)
