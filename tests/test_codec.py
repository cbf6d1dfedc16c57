from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataserve import PayloadError
from dataserve._codec import BYTES, JSON, TEXT, decode, encode


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, -0.0 told from 0.0, and bool told from int."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def test_str_travels_as_utf8_text() -> None:
    assert encode("héllo") == ("héllo".encode(), TEXT)


def test_none_travels_as_json_null() -> None:
    assert encode(None) == (b"null", JSON)


@pytest.mark.parametrize("value", [b"ab", bytearray(b"ab"), memoryview(b"ab")])
def test_bytes_like_values_travel_as_octet_stream(value: Any) -> None:
    assert encode(value) == (b"ab", BYTES)


def test_tuple_comes_back_as_list() -> None:
    assert decode(*encode((1, "a"))) == [1, "a"]


def test_int_dict_keys_come_back_as_strings() -> None:
    assert decode(*encode({1: "a"})) == {"1": "a"}


def test_nan_and_infinities_round_trip() -> None:
    value = decode(*encode([math.nan, math.inf, -math.inf]))
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("value", [{1, 2}, object(), [1, {2}], {(1, 2): "tuple key"}, 1j])
def test_values_json_cannot_carry_are_refused(value: Any) -> None:
    with pytest.raises(PayloadError, match="cannot send"):
        encode(value)


def test_refusal_names_the_type_and_what_is_allowed() -> None:
    with pytest.raises(PayloadError, match=r"type set: dataserve sends str, a JSON-able value"):
        encode({1})


def test_lone_surrogate_in_str_is_refused() -> None:
    with pytest.raises(PayloadError, match="UTF-8"):
        encode("\ud800")


def test_self_referencing_list_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(PayloadError, match="Circular reference"):
        encode(loop)


def test_empty_body_without_content_type_is_none() -> None:
    assert decode(b"", None) is None


def test_empty_text_is_empty_str() -> None:
    assert decode(b"", TEXT) == ""


def test_body_without_content_type_is_415() -> None:
    with pytest.raises(PayloadError) as info:
        decode(b"x", None)
    assert info.value.status == 415


def test_unknown_content_type_is_415() -> None:
    with pytest.raises(PayloadError, match="unsupported Content-Type") as info:
        decode(b"x", "image/png")
    assert info.value.status == 415


def test_bad_json_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid JSON") as info:
        decode(b"[1,", JSON)
    assert info.value.status == 400


def test_deeply_nested_json_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid JSON") as info:
        decode(b"[" * 100_000 + b"]" * 100_000, JSON)
    assert info.value.status == 400


def test_bad_utf8_text_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid utf-8") as info:
        decode(b"\xff", TEXT)
    assert info.value.status == 400


def test_text_charset_is_honoured() -> None:
    assert decode("é".encode("latin-1"), "text/plain; charset=latin-1") == "é"


def test_unknown_charset_is_415() -> None:
    with pytest.raises(PayloadError) as info:
        decode(b"x", "text/plain; charset=nope")
    assert info.value.status == 415


def test_content_type_is_case_insensitive() -> None:
    assert decode(b"[1]", "Application/JSON; charset=utf-8") == [1]


@given(st.text())
def test_any_str_round_trips(value: str) -> None:
    assert decode(*encode(value)) == value


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    assert same(decode(*encode(value)), value)


@given(st.binary())
def test_any_bytes_round_trip(value: bytes) -> None:
    assert decode(*encode(value)) == value
