"""scoring_service.wire, the byte-level codec of PredictStream and Predict, against the generated protobuf
classes: what one writes the other must read, field for field, and bad bytes are a BatchFormatError."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scoring_service import wire
from segmentation.v1 import scoring_pb2 as pb

RNG = np.random.default_rng(7)


def test_a_batch_request_encoded_by_wire_is_what_protobuf_reads() -> None:
    numeric = {"income": RNG.normal(size=50), "visits": np.arange(50, dtype=float), "empty": np.zeros(0)}
    categorical = {"channel": ["web", None, "store"] * 16 + ["web", "app"]}
    data = wire.encode_batch_request(numeric, categorical, batch_id="b-7", model="customers", version="v0003",
                                     ids=[f"c{i}" for i in range(50)])
    message = pb.PredictBatchRequest.FromString(data)
    assert message.batch_id == "b-7"
    assert (message.selector.model, message.selector.version) == ("customers", "v0003")
    assert [c.name for c in message.numeric] == ["income", "visits", "empty"]
    assert list(message.numeric[0].values) == numeric["income"].tolist()
    assert list(message.numeric[1].values) == numeric["visits"].tolist() and not message.numeric[2].values
    assert list(message.categorical[0].values)[:3] == ["web", "", "store"]
    assert list(message.ids) == [f"c{i}" for i in range(50)]


def test_a_batch_request_serialized_by_protobuf_decodes_with_zero_copy_columns() -> None:
    values = RNG.normal(size=1000)
    message = pb.PredictBatchRequest(
        batch_id="x", selector=pb.ModelSelector(model="m", version="v0001"),
        numeric=[pb.NumericColumn(name="a", values=values.tolist()), pb.NumericColumn(name="b", values=[1.0])],
        categorical=[pb.CategoricalColumn(name="g", values=["F", "M"])], ids=["1", "2"])
    batch = wire.decode_batch_request(message.SerializeToString())
    assert (batch.batch_id, batch.model, batch.version, batch.has_selector) == ("x", "m", "v0001", True)
    assert np.array_equal(batch.numeric["a"], values) and batch.numeric["b"].tolist() == [1.0]
    assert batch.categorical == {"g": ["F", "M"]} and batch.ids == ["1", "2"]
    assert batch.column_order == ["a", "b", "g"]


def test_unpacked_doubles_are_read() -> None:
    # proto3 parsers must accept repeated doubles sent one fixed64 field each (other languages' encoders may).
    one_by_one = wire._string_field(1, "a") + b"".join(b"\x11" + np.float64(v).tobytes() for v in (1.5, -2.0))
    assert wire.decode_batch_request(wire._len_field(3, one_by_one)).numeric["a"].tolist() == [1.5, -2.0]


@pytest.mark.parametrize("data, message", [
    (wire._len_field(3, wire._string_field(1, "a") + wire._len_field(2, bytes(12))), "not a multiple of 8"),
    (wire._len_field(3, wire._string_field(1, "a") + b"\x11" + bytes(3)), "not a multiple of 8"),
    (wire._len_field(3, wire._string_field(1, "a") + b"\x15" + bytes(4)), "undecodable"),  # fixed32 values
    (b"\x1a\xff\xff\xff", "undecodable"),
    (wire.encode_batch_request({"a": [1.0]}) + wire.encode_batch_request({"a": [2.0]}), "'a' appears twice"),
    (wire._len_field(3, wire._len_field(2, bytes(8))), "a column has no name"),
], ids=["odd length", "truncated fixed64", "wrong wire type", "truncated", "twice", "no name"])
def test_malformed_batches_are_batch_errors(data: bytes, message: str) -> None:
    with pytest.raises(wire.BatchFormatError, match=message):
        wire.decode_batch_request(data)


def test_a_batch_error_carries_the_batch_id_wherever_it_is_in_the_message() -> None:
    twice = wire.encode_batch_request({"a": [1.0]}) + wire.encode_batch_request({}, {"a": ["x"]})
    for data in (wire._string_field(1, "b7") + twice, twice + wire._string_field(1, "b7")):
        with pytest.raises(wire.BatchFormatError, match="'a' appears twice") as err:
            wire.decode_batch_request(data)
        assert err.value.batch_id == "b7"


def test_a_batch_response_encoded_by_wire_is_what_protobuf_reads_and_back() -> None:
    n = 300
    segment = RNG.integers(0, 12, n).astype(np.int32)
    segment[[3, 9]] = -1
    distance, confidence = RNG.random(n), RNG.random(n)
    outlier = RNG.random(n) > 0.9
    data = wire.encode_batch_response(batch_id="b", model="m", version="v0002", row_count=n, segment_id=segment,
                                      distance=distance, confidence=confidence, outlier=outlier,
                                      row_errors={9: "f2: inf is not a finite number", 3: "bad"},
                                      segment_names=["A", "B"])
    message = pb.PredictBatchResponse.FromString(data)
    assert list(message.segment_id) == segment.tolist()  # -1 takes ten bytes as an int32 varint
    assert list(message.distance) == distance.tolist() and list(message.confidence) == confidence.tolist()
    assert list(message.outlier) == outlier.tolist()
    assert [(e.row, e.message) for e in message.row_errors] == [(3, "bad"), (9, "f2: inf is not a finite number")]
    assert (message.row_count, list(message.segment_names), message.version) == (n, ["A", "B"], "v0002")
    back = wire.decode_batch_response(message.SerializeToString())
    assert np.array_equal(back.segment_id, segment) and np.array_equal(back.outlier, outlier)
    assert np.array_equal(back.distance, distance) and back.row_errors == {3: "bad", 9: "f2: inf is not a finite number"}


def test_clv_columns_travel_in_single_precision_both_ways() -> None:
    # request: the columns named ``single`` go as NumericColumn.single_values (packed floats), the others as
    # doubles; protobuf reads them, and the decoder gives float32 views
    age, repeats = RNG.random(40) * 70, RNG.integers(0, 30, 40).astype(float)
    data = wire.encode_batch_request({"Recency": age, "RepeatPurchases": repeats, "CustomerAge": age},
                                     single={"RepeatPurchases", "CustomerAge"})
    message = pb.PredictBatchRequest.FromString(data)
    assert list(message.numeric[0].values) == age.tolist() and not message.numeric[0].single_values
    assert list(message.numeric[1].single_values) == repeats.tolist() and not message.numeric[1].values
    assert list(message.numeric[2].single_values) == age.astype(np.float32).tolist()
    batch = wire.decode_batch_request(data)
    assert batch.numeric["Recency"].dtype == np.float64 and np.array_equal(batch.numeric["Recency"], age)
    assert batch.numeric["CustomerAge"].dtype == np.float32
    assert np.array_equal(batch.numeric["CustomerAge"], age.astype(np.float32))
    # what other encoders may write: protobuf's own bytes, floats one fixed32 field each
    back = wire.decode_batch_request(pb.PredictBatchRequest(numeric=[
        pb.NumericColumn(name="a", single_values=[1.5, -2.0])]).SerializeToString())
    assert back.numeric["a"].dtype == np.float32 and back.numeric["a"].tolist() == [1.5, -2.0]
    one_by_one = wire._string_field(1, "a") + b"".join(b"\x1d" + np.float32(v).tobytes() for v in (1.5, 3.0))
    assert wire.decode_batch_request(wire._len_field(3, one_by_one)).numeric["a"].tolist() == [1.5, 3.0]
    both = wire._len_field(3, wire._string_field(1, "a") + wire._len_field(2, bytes(8)) + wire._len_field(3, bytes(4)))
    with pytest.raises(wire.BatchFormatError, match="'a' has both values and single_values"):
        wire.decode_batch_request(both)
    with pytest.raises(wire.BatchFormatError, match="not a multiple of 4"):
        wire.decode_batch_request(wire._len_field(3, wire._string_field(1, "a") + wire._len_field(3, bytes(6))))
    # response: the four CLV figures as packed floats (repeated float fields 20-23)
    n = 25
    figures = [RNG.random(n) * 10 ** i for i in range(4)]
    data = wire.encode_batch_response(batch_id="b", model="m", version="v0001", row_count=n,
                                      segment_id=np.zeros(n, dtype=np.int32), distance=RNG.random(n),
                                      confidence=RNG.random(n), outlier=np.zeros(n, dtype=bool), clv=figures)
    message = pb.PredictBatchResponse.FromString(data)
    assert list(message.clv) == figures[3].astype(np.float32).tolist()
    assert list(message.p_alive) == figures[1].astype(np.float32).tolist()
    result = wire.decode_batch_response(data)
    assert list(result.clv) == list(wire.CLV_FIELDS.values())
    for name, values in zip(wire.CLV_FIELDS.values(), figures):
        assert result.clv[name].dtype == np.float32 and np.array_equal(result.clv[name], values.astype(np.float32))


@pytest.mark.parametrize("values", [[0, 1, 127], [128, 300, 2**31 - 1], [-1, -(2**31), 5], []])
def test_packed_varints_match_protobuf(values: list[int]) -> None:
    expected = pb.PredictBatchResponse(segment_id=values).SerializeToString()
    payload = wire.encode_varints(np.array(values, dtype=np.int32))
    assert (wire._len_field(4, payload) if values else b"") == expected
    assert wire.decode_varints(payload).tolist() == values


@pytest.mark.parametrize("segment, distance, confidence, outlier", [
    (0, 0.0, 1.0, False), (3, 1.25, 0.5, True), (1, math.nan, 0.0, False), (2, 1e-300, 1.0 - 1e-16, True)])
def test_predict_response_bytes_are_protobuf_s(segment: int, distance: float, confidence: float,
                                               outlier: bool) -> None:
    names = ["Champions", "Loyal", "At Risk", "Lost"]
    parts = wire.predict_response_parts("customers", "v0004", names)
    got = wire.encode_predict_response(parts, "cust-1", segment, distance, confidence, outlier)
    expected = pb.PredictResponse(id="cust-1", model="customers", version="v0004", prediction=pb.Prediction(
        segment_id=segment, segment_name=names[segment], distance=distance, confidence=confidence,
        outlier=outlier)).SerializeToString()
    assert got == expected
