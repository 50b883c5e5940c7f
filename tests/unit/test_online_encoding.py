"""The vectorised encodings of pulse.features.encoding produce exactly the bytes Feast's own serialisers do."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from pulse.features.encoding import (
    binary_groups,
    constant_groups,
    entity_key_prefix,
    join_rows,
    repeated,
    to_bytes,
    value_groups,
    wrap,
)

COLUMNS = [
    (ValueType.INT64, pa.int64(), [0, 1, -1, 127, 128, 300, 16_384, 2**35, 2**63 - 1, -(2**63)]),
    (ValueType.INT64, pa.int64(), [3, None, 0, -5, None, 2**40]),  # nulls: Feast goes through float64
    (ValueType.INT32, pa.int32(), [0, -1, 2**31 - 1, -(2**31), None, 5]),
    (ValueType.DOUBLE, pa.float64(), [0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, None, 1e300, 5e-324]),
    (ValueType.FLOAT, pa.float32(), [0.0, -2.5, 3.4e38, None, math.nan, 1e-45]),
    (ValueType.STRING, pa.string(), ["", "a", "é€😀", None, "x" * 200, "y" * 128, "tab\tnew\nline"]),
    (ValueType.BOOL, pa.bool_(), [True, False, None, True]),
]


def feast_bytes(array: pa.Array, value_type: ValueType) -> list[bytes]:
    """What Feast's materialisation writes: its converter over the column's numpy values."""
    values = python_values_to_proto_values(array.to_numpy(zero_copy_only=False), value_type)
    return [v.SerializeToString() for v in values]


@pytest.mark.parametrize(("value_type", "arrow_type", "values"), COLUMNS)
def test_values_serialise_as_feast_does(value_type, arrow_type, values):
    array = pa.array(values, type=arrow_type)
    assert to_bytes(value_groups(array, value_type), len(array)) == feast_bytes(array, value_type)


def test_random_integers_and_doubles_serialise_as_feast_does():
    rng = np.random.default_rng(7)
    ints = pa.array(rng.integers(-(2**62), 2**62, 2_000) >> rng.integers(0, 62, 2_000))
    doubles = pa.array(rng.normal(0, 1e6, 2_000))
    assert to_bytes(value_groups(ints, ValueType.INT64), 2_000) == feast_bytes(ints, ValueType.INT64)
    assert to_bytes(value_groups(doubles, ValueType.DOUBLE), 2_000) == feast_bytes(doubles, ValueType.DOUBLE)


def test_sliced_chunked_arrays_keep_their_rows():
    array = pa.chunked_array([pa.array(["skip", "a", "bb"]).slice(1), pa.array([None, "ccc"])])
    expected = [Value(string_val=v).SerializeToString() if v else b"" for v in ["a", "bb", None, "ccc"]]
    assert to_bytes(value_groups(array, ValueType.STRING), 4) == expected


def test_entity_keys_are_feasts_redis_keys():
    ids = pa.array(["c0000001", "", "ü-42", "x" * 300])
    keys = to_bytes(wrap(binary_groups(ids), entity_key_prefix("customer_id"), b"proj"), len(ids))
    expected = [
        _redis_key("proj", EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=v)]), 3)
        for v in ids.to_pylist()
    ]
    assert keys == expected


def test_rows_join_column_by_column_and_drop_unkept_rows():
    names = pa.array(["a", "bbb", "", "cc"])
    stamps = constant_groups(np.array([5, 7, 5, 9]), lambda v: b"<%d>" % v)
    columns = [binary_groups(names), stamps, repeated(b"|", 4)]
    assert join_rows(columns, 4) == b"a<5>|bbb<7>|<5>|cc<9>|"
    assert join_rows(columns, 4, keep=np.array([True, False, True, False])) == b"a<5>|<5>|"
    assert to_bytes(stamps, 4) == [b"<5>", b"<7>", b"<5>", b"<9>"]
