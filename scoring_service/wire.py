"""Every protobuf wire conversion of the scoring contract, both directions, in one place.

Batches travel as columns of many rows, so the generic protobuf API (one Python float object per value)
would dominate the cost of a stream. Here the packed fields are written and read as bytes instead:
a packed ``repeated double`` is ``tag + varint(length) + array.astype('<f8').tobytes()`` on the wire and
``np.frombuffer`` on the way back (``repeated float`` likewise with '<f4': the CLV columns, which travel in
single precision); packed ints and bools are numpy-vectorized varints. Messages built
this way are ordinary protobuf messages: any client in any language reads them.

Client direction (used by ``scoring_service.client``)::

    call = predict_stream_method(channel)           # bytes in, bytes out
    for reply in call(iter([encode_batch_request({"Age": ages, ...}, batch_id="b1")])):
        result = decode_batch_response(reply)        # numpy columns

Server direction: :func:`decode_batch_request` and :func:`encode_batch_response`.
Small messages (``Predict``) use the generated classes: at one row the generic API is the fast one.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Collection, Iterable, Mapping, Sequence

import grpc
import numpy as np

from segmentation.v1 import scoring_pb2 as pb

SERVICE = "segmentation.v1.ScoringService"
PREDICT_STREAM_PATH = f"/{SERVICE}/PredictStream"

# Wire types (protobuf encoding spec).
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_F64 = np.dtype("<f8")
_F32 = np.dtype("<f4")


# ---- low-level helpers --------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    """Encode one non-negative int (or a negative int as 64-bit two's complement) as a varint."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _len_field(number: int, payload: bytes | bytearray | memoryview) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return _tag(number, _LEN) + _varint(len(payload)) + bytes(payload)


def _string_field(number: int, text: str) -> bytes:
    return _len_field(number, text.encode()) if text else b""


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _fields(buf: memoryview) -> Iterable[tuple[int, int, object]]:
    """Yield (field number, wire type, value) of a message: int for varint/fixed, memoryview for LEN."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire_type == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire_type == _I64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire_type == _I32:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def encode_varints(values: np.ndarray) -> bytes:
    """Packed varint payload of an integer array (int32/int64/bool semantics: negatives take 10 bytes)."""
    values = np.asarray(values)
    if values.dtype == np.bool_:  # bools are 0/1 bytes: already one-byte varints
        return np.ascontiguousarray(values).view(np.uint8).tobytes()
    if values.dtype.kind in "iu" and values.size and values.min() >= 0 and values.max() < 0x80:
        return values.astype(np.uint8).tobytes()  # the common case: small non-negative ids, one byte each
    v = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
    nbytes = np.ones(v.size, dtype=np.int64)
    for i in range(1, 10):
        nbytes += v >= np.uint64(1 << (7 * i))
    offsets = np.cumsum(nbytes) - nbytes
    out = np.zeros(int(nbytes.sum()), dtype=np.uint8)
    for i in range(10):
        mask = nbytes > i
        if not mask.any():
            break
        chunk = ((v[mask] >> np.uint64(7 * i)) & np.uint64(0x7F)).astype(np.uint8)
        chunk |= np.where(nbytes[mask] - 1 > i, 0x80, 0).astype(np.uint8)
        out[offsets[mask] + i] = chunk
    return out.tobytes()


def decode_varints(payload: bytes | memoryview) -> np.ndarray:
    """Packed varint payload -> int64 array (two's complement, as int32/int64 fields encode negatives)."""
    b = np.frombuffer(payload, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    cont = b >= 0x80
    if not cont.any():
        return b.astype(np.int64)
    if cont[-1]:
        raise ValueError("truncated packed varints")
    ends = np.flatnonzero(~cont)
    starts = np.concatenate(([0], ends[:-1] + 1))
    group_start = np.repeat(starts, ends - starts + 1)
    shift = ((np.arange(b.size) - group_start) * 7).astype(np.uint64)
    parts = (b & 0x7F).astype(np.uint64) << shift
    return np.bitwise_or.reduceat(parts, starts).view(np.int64)


def _packed_doubles(number: int, values: np.ndarray, dtype: np.dtype = _F64) -> list[bytes | memoryview]:
    """Header and the array's own buffer: ``b"".join`` then copies the doubles (or floats, ``dtype`` '<f4')
    once, straight from numpy."""
    data = np.ascontiguousarray(values, dtype=dtype)
    return [_tag(number, _LEN) + _varint(data.nbytes), data.data] if data.size else []


def _packed_varints(number: int, values: np.ndarray) -> bytes:
    return _len_field(number, encode_varints(values)) if len(values) else b""


def _varint_field(number: int, value: int) -> bytes:
    return _tag(number, _VARINT) + _varint(value) if value else b""


# ---- client direction ---------------------------------------------------------------------------------
def _categorical_column(name: str, values: Sequence[object]) -> pb.CategoricalColumn:
    """A list of str goes to upb as it is (the client's case, no pass in Python); None becomes "" and any
    other value its str()."""
    if isinstance(values, list):
        try:
            return pb.CategoricalColumn(name=name, values=values)
        except TypeError:  # a None or a non-str item
            pass
    return pb.CategoricalColumn(name=name, values=["" if v is None else str(v) for v in values])


def encode_batch_request(numeric: Mapping[str, np.ndarray | Sequence[float]],
                         categorical: Mapping[str, Sequence[str]] | None = None,
                         *, batch_id: str = "", model: str = "", version: str = "",
                         ids: Sequence[str] | None = None, single: Collection[str] = ()) -> bytes:
    """Wire bytes of a ``PredictBatchRequest``: one packed-double column per numeric feature (NaN =
    missing; the columns named in ``single``, the CLV inputs, in single precision: ``single_values``), one
    string column per categorical feature ("" = missing), optional ids and selector.

    Columns are sent as given; the server checks they are all the same length (a ragged batch is a
    batch error). Send the bytes with :func:`predict_stream_method`.
    """
    parts = [_string_field(1, batch_id)]
    if model or version:
        parts.append(_len_field(2, _string_field(1, model) + _string_field(2, version)))
    for name, values in numeric.items():
        head = _string_field(1, name)
        number, dtype = (3, _F32) if name in single else (2, _F64)
        column = _packed_doubles(number, values, dtype) or [_tag(number, _LEN) + b"\x00"]
        size = len(head) + sum(len(c) if isinstance(c, bytes) else c.nbytes for c in column)
        parts += [_tag(3, _LEN) + _varint(size), head, *column]
    for name, values in (categorical or {}).items():
        # Strings have no byte-level shortcut; upb's serializer is the fastest encoder of them.
        parts.append(_len_field(4, _categorical_column(name, values).SerializeToString()))
    if ids is not None and len(ids):
        parts.append(pb.PredictBatchRequest(ids=[str(i) for i in ids]).SerializeToString())
    return b"".join(parts)


@dataclass
class BatchResult:
    """A decoded ``PredictBatchResponse``: one entry per input row in each array."""

    batch_id: str = ""
    model: str = ""
    version: str = ""
    segment_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    distance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    outlier: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    row_errors: dict[int, str] = field(default_factory=dict)
    batch_error: str = ""
    segment_names: list[str] = field(default_factory=list)
    row_count: int = 0
    clv: dict[str, np.ndarray] | None = None
    """The CLV figures by name (CLV_FIELDS), when the server computed them; else None."""


CLV_FIELDS = {20: "expected_purchases", 21: "p_alive", 22: "expected_order_value", 23: "clv"}
"""PredictBatchResponse field number -> CLV figure (segmentation_core.clv.FIGURES, in order; repeated float)."""


def decode_batch_response(data: bytes) -> BatchResult:
    """Decode ``PredictBatchResponse`` wire bytes into numpy columns (segment_id int32, distance and
    confidence float64, outlier bool, the CLV figures float32), row errors as {row: message}."""
    out = BatchResult()
    seg: list[np.ndarray] = []
    dist: list[np.ndarray] = []
    conf: list[np.ndarray] = []
    outl: list[np.ndarray] = []
    clv: dict[str, list[np.ndarray]] = {}
    for number, wt, value in _fields(memoryview(data)):
        if number == 1 and wt == _LEN:
            out.batch_id = bytes(value).decode()
        elif number == 2 and wt == _LEN:
            out.model = bytes(value).decode()
        elif number == 3 and wt == _LEN:
            out.version = bytes(value).decode()
        elif number == 4:
            seg.append(decode_varints(value) if wt == _LEN else np.array([value], dtype=np.int64))
        elif number in (5, 6):
            arr = np.frombuffer(value, dtype=_F64)  # packed (LEN) or one unpacked fixed64
            (dist if number == 5 else conf).append(arr)
        elif number == 7:
            outl.append(decode_varints(value) if wt == _LEN else np.array([value], dtype=np.int64))
        elif number == 8 and wt == _LEN:
            err = pb.RowError.FromString(bytes(value))
            out.row_errors[err.row] = err.message
        elif number == 9 and wt == _LEN:
            out.batch_error = bytes(value).decode()
        elif number == 10 and wt == _LEN:
            out.segment_names.append(bytes(value).decode())
        elif number == 11 and wt == _VARINT:
            out.row_count = value - (1 << 64) if value >= 1 << 63 else value
        elif number in CLV_FIELDS:
            clv.setdefault(CLV_FIELDS[number], []).append(np.frombuffer(value, dtype=_F32))  # packed, or one fixed32
    if clv:
        out.clv = {name: _join(clv.get(name, []), _F32) for name in CLV_FIELDS.values()}
    out.segment_id = _join(seg, np.int64).astype(np.int32)
    out.distance = _join(dist, _F64)
    out.confidence = _join(conf, _F64)
    out.outlier = _join(outl, np.int64).astype(bool)
    return out


def _join(chunks: list[np.ndarray], dtype: object) -> np.ndarray:
    if not chunks:
        return np.zeros(0, dtype=dtype)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def predict_stream_method(channel: grpc.Channel) -> grpc.StreamStreamMultiCallable:
    """``PredictStream`` on ``channel`` taking and returning wire bytes (no protobuf (de)serialization):
    feed it :func:`encode_batch_request` output, decode replies with :func:`decode_batch_response`."""
    return channel.stream_stream(PREDICT_STREAM_PATH, request_serializer=None, response_deserializer=None)


# ---- server direction ---------------------------------------------------------------------------------
class BatchFormatError(ValueError):
    """A batch request that cannot be decoded or is malformed as a whole (answered by a batch error).

    ``batch_id``: the request's, when it could be read, for the error response to carry."""

    def __init__(self, message: str, batch_id: str = "") -> None:
        super().__init__(message)
        self.batch_id = batch_id


@dataclass
class DecodedBatch:
    """A ``PredictBatchRequest`` as columns: numeric arrays (float64; float32 for a column sent in single
    precision) and categorical string lists by name."""

    batch_id: str = ""
    model: str = ""
    version: str = ""
    has_selector: bool = False
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    column_order: list[str] = field(default_factory=list)


def _skip(buf: memoryview, pos: int, wire_type: int) -> int:
    """Position after a field value of ``wire_type`` starting at ``pos``."""
    if wire_type == _VARINT:
        return _read_varint(buf, pos)[1]
    if wire_type == _I64:
        return pos + 8
    if wire_type == _I32:
        return pos + 4
    if wire_type == _LEN:
        size, pos = _read_varint(buf, pos)
        return pos + size
    raise ValueError(f"unsupported wire type {wire_type}")


def _decode_numeric_column(buf: memoryview) -> tuple[str, np.ndarray]:
    # The usual column, as every encoder writes it: the name (key 0x0A, a one-byte length) then one
    # packed values field (key 0x12: doubles; 0x1A: single_values, floats) ending the message; read inline.
    # Anything else: the field reader.
    end = len(buf)
    if end > 3 and buf[0] == 0x0A and buf[1] < 0x80 and 2 + buf[1] < end and buf[2 + buf[1]] in (0x12, 0x1A):
        pos = 3 + buf[1]
        size, start = _read_varint(buf, pos)
        dtype = _F64 if buf[pos - 1] == 0x12 else _F32
        if start + size == end and not size % dtype.itemsize:
            return bytes(buf[2:pos - 1]).decode(), np.frombuffer(buf[start:end], dtype=dtype)
    name = ""
    chunks: dict[int, list[np.ndarray]] = {2: [], 3: []}
    for number, wt, value in _fields(buf):
        if number == 1 and wt == _LEN:
            name = bytes(value).decode()
        elif number in (2, 3):
            dtype, fixed = (_F64, _I64) if number == 2 else (_F32, _I32)
            if wt not in (_LEN, fixed):
                raise ValueError(f"column values with wire type {wt}")
            if len(value) % dtype.itemsize:
                raise BatchFormatError(f"packed {'double' if number == 2 else 'float'} column has a length that "
                                       f"is not a multiple of {dtype.itemsize}")
            chunks[number].append(np.frombuffer(value, dtype=dtype))  # packed, or one unpacked fixed value
    if chunks[3]:
        if chunks[2]:
            raise BatchFormatError(f"column {name!r} has both values and single_values")
        return name, _join(chunks[3], _F32)
    return name, _join(chunks[2], _F64)


def decode_batch_request(data: bytes) -> DecodedBatch:
    """Decode ``PredictBatchRequest`` wire bytes; numeric columns are zero-copy views of ``data``.

    Raises BatchFormatError for undecodable bytes or a column named twice, with the request's batch_id
    when it could be read (a column named twice: wherever the batch_id is). Column lengths are not
    checked here (the caller decides what a ragged batch means). One tight loop over the top-level
    fields (one-byte keys and lengths read inline): this runs once per batch of a stream.
    """
    out = DecodedBatch()
    problem = ""  # the first column named twice (or without a name): reported once the whole message is read
    try:
        buf = memoryview(data)
        pos, end = 0, len(buf)
        while pos < end:
            key = buf[pos]
            pos += 1
            if key >= 0x80:
                key, pos = _read_varint(buf, pos - 1)
            number, wt = key >> 3, key & 7
            if wt != _LEN:
                pos = _skip(buf, pos, wt)
                continue
            size, pos = _read_varint(buf, pos)
            stop = pos + size
            if stop > end:
                raise ValueError("truncated length-delimited field")
            value = buf[pos:stop]
            pos = stop
            if number == 3:
                name, values = _decode_numeric_column(value)
                problem = problem or _add_column(out, name)
                out.numeric.setdefault(name, values)
            elif number == 4:
                column = pb.CategoricalColumn.FromString(bytes(value))
                problem = problem or _add_column(out, column.name)
                if column.name not in out.numeric:
                    out.categorical.setdefault(column.name, list(column.values))
            elif number == 1:
                out.batch_id = bytes(value).decode()
            elif number == 2:
                selector = pb.ModelSelector.FromString(bytes(value))
                out.model, out.version, out.has_selector = selector.model, selector.version, True
            elif number == 5:
                out.ids.append(bytes(value).decode())
        if pos > end:
            raise ValueError("truncated field")
    except BatchFormatError as exc:
        raise BatchFormatError(str(exc), out.batch_id) from exc
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a malformed message
        raise BatchFormatError(f"undecodable PredictBatchRequest: {exc}", out.batch_id) from exc
    if problem:
        raise BatchFormatError(problem, out.batch_id)
    return out


def _add_column(batch: DecodedBatch, name: str) -> str:
    """Record a column's name; returns what is wrong with it ("" when nothing)."""
    if not name:
        return "a column has no name"
    if name in batch.numeric or name in batch.categorical:
        return f"column {name!r} appears twice"
    batch.column_order.append(name)
    return ""


def batch_response_bytes_per_row(clv: bool = False) -> int:
    """The bytes one scored row adds to a ``PredictBatchResponse`` (:func:`encode_batch_response`): its segment_id
    varint (1 byte for ids below 128), distance and confidence doubles (8 + 8), its outlier flag (1) and, for a
    lifetime-value model, the four CLV figures in single precision (16). A row with an error adds its message
    instead (not counted: few rows). What a client needs to size batches whose reply must fit too."""
    return 1 + 8 + 8 + 1 + (4 * 4 if clv else 0)


def encode_batch_response(*, batch_id: str, model: str, version: str, row_count: int,
                          segment_id: np.ndarray | None = None, distance: np.ndarray | None = None,
                          confidence: np.ndarray | None = None, outlier: np.ndarray | None = None,
                          row_errors: Mapping[int, str] | None = None, batch_error: str = "",
                          segment_names: Sequence[str] = (), clv: Sequence[np.ndarray] | None = None) -> bytes:
    """Wire bytes of a ``PredictBatchResponse`` from numpy result columns (``clv``: the four CLV figures, sent
    in single precision)."""
    parts = [_string_field(1, batch_id), _string_field(2, model), _string_field(3, version)]
    if segment_id is not None:
        parts += [_packed_varints(4, segment_id), *_packed_doubles(5, distance), *_packed_doubles(6, confidence),
                  _packed_varints(7, np.asarray(outlier))]
    for row in sorted(row_errors or ()):
        parts.append(_len_field(8, pb.RowError(row=row, message=row_errors[row]).SerializeToString()))
    parts.append(_string_field(9, batch_error))
    parts.extend(_len_field(10, name.encode()) for name in segment_names)
    parts.append(_varint_field(11, row_count))
    if clv is not None:
        for number, values in zip(CLV_FIELDS, clv):
            parts += _packed_doubles(number, values, _F32)
    return b"".join(parts)


# ---- Predict (unary) response ---------------------------------------------------------------------
_PACK_DOUBLE = struct.Struct("<d").pack


def predict_response_parts(model: str, version: str, segment_names: Sequence[str]) -> tuple[tuple[bytes, ...], bytes]:
    """The constant parts of a version's ``PredictResponse`` bytes: per segment id the start of its
    ``Prediction`` (segment_id, segment_name), and the response's tail (model, version)."""
    heads = tuple((_varint_field(1, sid) if sid else b"") + _string_field(2, name)
                  for sid, name in enumerate(segment_names))
    return heads, _string_field(3, model) + _string_field(4, version)


def encode_predict_response(parts: tuple[tuple[bytes, ...], bytes], id: str, segment: int, distance: float,
                            confidence: float, outlier: bool, clv: Sequence[float] | None = None) -> bytes:
    """``PredictResponse`` wire bytes (the same bytes as the generated class's ``SerializeToString``) from
    the parts of :func:`predict_response_parts`: a few concatenations instead of two message objects."""
    heads, tail = parts
    prediction = heads[segment]
    if distance:
        prediction += b"\x19" + _PACK_DOUBLE(distance)
    if confidence:
        prediction += b"\x21" + _PACK_DOUBLE(confidence)
    if outlier:
        prediction += b"\x28\x01"
    if clv is not None:  # Prediction.clv (field 10): CustomerValue's four doubles, zeros left out as proto3 does
        value = b"".join(bytes((0x09 + 8 * i,)) + _PACK_DOUBLE(v) for i, v in enumerate(clv) if v)
        prediction += b"\x52" + _varint(len(value)) + value
    return _string_field(1, id) + b"\x12" + _varint(len(prediction)) + prediction + tail
