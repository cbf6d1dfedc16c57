"""JSON text made and read as the standard library's json makes and reads it, errors included."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

from dataserve import _json

STANDARD = json.JSONEncoder(allow_nan=True, ensure_ascii=False, separators=(",", ":"))

VALUES: list[Any] = [
    [1, 2, 3, 4],
    {"a": [1.5, None, True, "é"], "b": {"c": []}},
    (1, "two"),
    3,
    1e400,
    float("nan"),
    "x",
    None,
    [[[]]],
    {"k": "\ud800"},
    {1: "int key", None: "none key"},
]

BODIES = [
    b"[4]",
    b" \n\t[4] \r\n",
    b"",
    b"[4] x",
    b"[1]]",
    b"1 2",
    "[4]".encode("utf-16"),
    "[4]".encode("utf-32-le"),
    b"\xef\xbb\xbf[1]",
    b'"\\ud800"',
    b"\xc3(",
    b'{"a":1}',
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_writes_what_json_writes(value: Any) -> None:
    assert _json.dumps(value) == STANDARD.encode(value)


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_loads_reads_what_json_reads_and_fails_as_it_fails(body: bytes) -> None:
    expected = _outcome(json.loads, body)
    assert _outcome(_json.loads, body) == expected
    assert _outcome(_json.loads, bytearray(body)) == expected


def _outcome(loads: Any, body: bytes | bytearray) -> Any:
    """What ``loads(body)`` returns, or the type and message of what it raises."""
    try:
        return loads(body)
    except ValueError as exc:
        return type(exc), str(exc)


def test_numpy_scalars_are_written_as_the_numbers_they_hold() -> None:
    assert _json.dumps([np.int64(3), np.float32(1.5), np.bool_(True)]) == "[3,1.5,true]"


def test_a_failure_leaves_no_mark_that_makes_a_later_value_look_circular() -> None:
    shared = [1]
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json.dumps([shared, object()])  # fails inside the list, after marking it
    assert _json.dumps([shared, shared]) == "[[1],[1]]"
    loop: list[Any] = []
    loop.append(loop)
    for _ in range(2):
        with pytest.raises(ValueError, match="Circular reference"):
            _json.dumps(loop)


def test_threads_writing_the_same_list_at_once_each_get_its_text() -> None:
    shared = [list(range(50))] * 200  # one inner list, many times: marked and unmarked over and over
    expected = STANDARD.encode(shared)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(200):
                assert _json.dumps(shared) == expected
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
