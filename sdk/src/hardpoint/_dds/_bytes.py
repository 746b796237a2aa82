"""Private-API shim for cyclonedds-python 11.0.1: bytes payloads and raw sample I/O.

**Everything in this module relies on internals of cyclonedds-python that are
not public API.** It is the only module of hardpoint that does; the version is
pinned (``cyclonedds==11.0.1``) and checked when this module is imported, and
``tests/sdk/test_dds_bytes.py`` proves each trick against the library.

Why it exists (measured, see ``shared/anchors/performance.md`` and the
transport's report):

* In 11.0.1 a ``sequence[uint8]`` member is (de)serialised as a Python list of
  ints (2.7x slower at 1 KiB, 40x at 64 KiB), and a plain ``bytes`` annotation
  is refused at topic creation. :func:`use_bytes` keeps the IDL type
  ``sequence<uint8>`` (what the XTypes type object and other tools see) but
  swaps the member's machine for the library's internal ``BytesMachine``,
  whose wire format is identical, so Python reads and writes :class:`bytes`.
  Internals touched: ``IDL.populate``, ``IDL.v1_machine``/``v2_machine``,
  ``StructMachine.members_machines``, ``PlainCdrV2SequenceOfPrimitiveMachine``
  and ``BytesMachine`` in ``cyclonedds.idl._machinery``.
* Even with bytes, the library's generic serializer costs about 25 us per
  envelope each way. :class:`EnvelopeEncoder` and :func:`make_decoder` encode
  and decode the fixed envelope layout with :mod:`struct` in 1-3 us, producing
  byte-identical XCDR1 (little endian) to the library's own serializer; other
  encodings (big endian, XCDR2) are decoded by the library.
* :func:`write` hands a serialized sample to ``dds_write`` through ctypes in
  the ``ddspy`` sample container layout (``{void *data; size_t size}``) of
  ``cyclonedds._clayer``. The library's own ``ddspy_write`` keeps the GIL
  while ``dds_write`` blocks for reliable flow control, freezing every thread
  of the process (including the one that would drain a full local reader)
  for up to the max blocking time; ctypes releases the GIL.
* :func:`take` calls ``cyclonedds._clayer.ddspy_take`` directly, skipping the
  generic per-sample deserialisation of ``DataReader.take``.
* :func:`waitset_attach`, :func:`waitset_detach` and :func:`waitset_wait` call
  the C API of the same names through the library's handle of ``libddsc``
  (``DDS._dll_handle``), with attach arguments of our choosing:
  ``WaitSet.wait`` of the library does not say which conditions triggered,
  so its caller would have to try every reader.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.metadata
import platform
import struct
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from hardpoint._errors import TransportError

if TYPE_CHECKING:
    from cyclonedds.idl import IdlStruct
    from cyclonedds.internal import SampleInfo

__all__ = [
    "REQUIRED_VERSION",
    "EnvelopeEncoder",
    "check_version",
    "make_decoder",
    "take",
    "taker",
    "triggered_buffer",
    "use_bytes",
    "waitset_attach",
    "waitset_detach",
    "waitset_wait",
    "write",
]

#: The only cyclonedds-python release whose internals this module is written against.
REQUIRED_VERSION: Final = "11.0.1"


def check_version(found: str | None) -> None:
    """Refuse any cyclonedds-python other than :data:`REQUIRED_VERSION`.

    :raises TransportError: ``found`` is another version, or ``None`` (not installed).
    """
    if found != REQUIRED_VERSION:
        raise TransportError(
            f"hardpoint's DDS transport needs cyclonedds=={REQUIRED_VERSION} (it uses private serialisation "
            f"API of that release, see hardpoint/_dds/_bytes.py), but {found or 'no cyclonedds'} is installed; "
            f"install cyclonedds=={REQUIRED_VERSION}"
        )


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("cyclonedds")
    except importlib.metadata.PackageNotFoundError:
        return None


check_version(_installed_version())

try:
    from cyclonedds.core import InstanceState, SampleState, ViewState
    from cyclonedds.idl._machinery import BytesMachine, PlainCdrV2SequenceOfPrimitiveMachine, StructMachine
    from cyclonedds.internal import DDS

    _clayer: Any = importlib.import_module("cyclonedds._clayer")
    _ddspy_take: Callable[[int, int, int], Any] = _clayer.ddspy_take
except (ImportError, AttributeError) as e:  # pragma: no cover - only with a broken install
    raise TransportError(
        f"cyclonedds {REQUIRED_VERSION} is installed but its internals are not as expected: {e}"
    ) from e


# -- bytes members ---------------------------------------------------------------


def use_bytes(cls: type[IdlStruct], member: str) -> None:
    """Make ``member`` of ``cls``, declared ``sequence[uint8]``, read and write :class:`bytes`.

    The type object (XTypes) still says ``sequence<uint8>``; only the Python
    (de)serialiser changes, to one with the same wire format.

    :raises TransportError: the library's machinery is not what this shim expects.
    """
    idl: Any = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        if type(machine) is not StructMachine:
            raise TransportError(f"cyclonedds internals changed: {cls.__name__} is not serialised by a StructMachine")
        members: dict[str, Any] = machine.members_machines
        current = members.get(member)
        if isinstance(current, BytesMachine):
            continue
        if not isinstance(current, PlainCdrV2SequenceOfPrimitiveMachine) or current.code != "B":
            raise TransportError(
                f"cyclonedds internals changed: {cls.__name__}.{member} is not serialised as sequence<uint8>"
            )
        bytes_machine: Any = BytesMachine
        members[member] = bytes_machine(current.max_length)


# -- envelope codec --------------------------------------------------------------

#: Encapsulation header: PLAIN_CDR (XCDR1), little endian, no options.
_XCDR1_LE: Final = b"\x00\x01\x00\x00"
#: Zero bytes that pad ``n`` bytes to a multiple of 4, indexed by ``n & 3``.
_PAD4: Final = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")
_U32: Final = struct.Struct("<I")
#: seq (uint64), count (uint32), 4 bytes of padding, stamp_ns (int64).
_MIDDLE: Final = struct.Struct("<QI4xq")
#: Distinct keys whose encoded prefix a writer remembers.
_PREFIX_CACHE_SIZE: Final = 1024


def _put_string(out: bytearray, value: str) -> None:
    """Append a CDR string at a 4-aligned position, then pad to 4 again."""
    data = value.encode("utf-8")
    out += _U32.pack(len(data) + 1)
    out += data
    out += b"\x00"
    out += _PAD4[len(out) & 3]


class EnvelopeEncoder:
    """Serialises the envelopes of one writer, whose source, epoch, interface and schema id are fixed.

    The output is exactly what ``Envelope(...).serialize()`` of the library
    produces for little endian XCDR1, padded to a multiple of 4 as
    ``DataWriter.write`` does.
    """

    __slots__ = ("_epoch", "_middle", "_prefixes", "_source", "_tail")

    def __init__(self, *, source: str, epoch: int, interface: str, schema_id: str) -> None:
        self._source = source
        self._epoch = epoch
        tail = bytearray()
        _put_string(tail, interface)
        _put_string(tail, schema_id)
        self._tail = bytes(tail)
        # After the prefix: seq, count, pad, stamp_ns, then interface and schema_id, then the payload length.
        self._middle = struct.Struct(f"<QI4xq{len(tail)}sI")
        self._prefixes: dict[str, bytes] = {}
        self._prefix("")  # fail now, not on the first write, if source is unencodable

    def _prefix(self, key: str) -> bytes:
        out = bytearray(_XCDR1_LE)
        _put_string(out, key)
        _put_string(out, self._source)
        out += _U32.pack(self._epoch)
        out += bytes(-(len(out) - len(_XCDR1_LE)) & 7)  # seq is 8-aligned relative to the body
        prefix = bytes(out)
        if len(self._prefixes) >= _PREFIX_CACHE_SIZE:
            self._prefixes.clear()
        self._prefixes[key] = prefix
        return prefix

    def encode(self, key: str, seq: int, count: int, stamp_ns: int, payload: bytes) -> bytes:
        """One serialized sample, ready for :func:`write`.

        :raises struct.error: a number does not fit its IDL type.
        :raises UnicodeEncodeError: ``key`` is not encodable.
        """
        prefix = self._prefixes.get(key) or self._prefix(key)
        n = len(payload)
        return b"".join((prefix, self._middle.pack(seq, count, stamp_ns, self._tail, n), payload, _PAD4[n & 3]))

    def encode_parts(
        self, key: str, seq: int, count: int, stamp_ns: int, parts: Sequence[bytes], *, size: int
    ) -> bytes:
        """Like :meth:`encode` with ``b"".join(parts)`` as the payload, copying each part once (no joined payload).

        :param size: the payload's length, ``sum(map(len, parts))`` (the caller knows it; summing costs).
        :raises struct.error: a number does not fit its IDL type.
        :raises UnicodeEncodeError: ``key`` is not encodable.
        :raises ValueError: ``size`` is not the length of the parts (the sample would be malformed).
        """
        prefix = self._prefixes.get(key) or self._prefix(key)
        n = size
        data = b"".join((prefix, self._middle.pack(seq, count, stamp_ns, self._tail, n), *parts, _PAD4[n & 3]))
        expected = len(prefix) + self._middle.size + n + (-n & 3)
        if len(data) != expected:
            raise ValueError(f"payload parts are {len(data) - expected + n} bytes, not {n}")
        return data


T = TypeVar("T")

#: The nine envelope members in wire order (key, source, epoch, seq, count, stamp_ns, interface, schema_id,
#: payload), then the handle of the writer that sent the sample (not on the wire: the reader's sample info).
Fields = tuple[str, str, int, int, int, int, str, str, bytes, int]
#: The envelope members, in wire order, that :func:`make_decoder` reads from what its fallback returns.
_MEMBERS: Final = ("key", "source", "epoch", "seq", "count", "stamp_ns", "interface", "schema_id", "payload")
#: Header layouts a decoder remembers (distinct writer and key pairs); it forgets them all past this.
_LAYOUT_CACHE_SIZE: Final = 1024


class _Layout:
    """What a decoder keeps of the samples of one writer and key (see :func:`make_decoder`)."""

    __slots__ = ("epoch", "head", "interface", "key", "rest", "schema_id", "source", "tail")

    def __init__(
        self, head: bytes, tail: bytes, *, key: str, source: str, epoch: int, interface: str, schema_id: str
    ) -> None:
        #: The bytes up to ``seq``: encapsulation, key, source, epoch, padding.
        self.head = head
        #: seq, count, padding, stamp_ns, the tail, the payload length.
        self.rest = struct.Struct(f"<QI4xq{len(tail)}sI")
        #: Interface and schema id as encoded.
        self.tail = tail
        self.key = key
        self.source = source
        self.epoch = epoch
        self.interface = interface
        self.schema_id = schema_id


def make_decoder(build: Callable[[Fields], T], fallback: Callable[[bytes], Any]) -> Callable[[bytes, int], T]:
    """A decoder ``decode(data, writer)`` of serialized envelopes into ``build((key, ..., payload, writer))``.

    ``writer`` is the handle of the writer that sent the sample (the sample
    info's publication handle), carried along as the last of the :data:`Fields`.
    Little endian XCDR1 (what hardpoint writes) is decoded with :mod:`struct`;
    anything else goes to ``fallback`` (the library's deserialiser), whose
    result's envelope members are read by name.

    Why it is fast: everything before ``seq`` (key, source, epoch) and the
    interface and schema id after ``stamp_ns`` are the same bytes in every
    sample of one writer and key. The first sample of each such *layout* is
    decoded field by field (:func:`_decode_fields`); the decoder then keeps
    the decoded strings and a :class:`struct.Struct` of the rest, and decodes
    a later sample whose bytes start with the same head with one
    ``unpack_from``, reusing the strings, once it has checked that the tail
    bytes are the same too. A sample whose bytes differ in any way takes the
    field-by-field path, so both paths give the same result.

    The decoder raises :class:`struct.error`, :class:`UnicodeDecodeError` or
    :class:`ValueError` on malformed input.
    """
    layouts: dict[bytes, _Layout] = {}  # by head
    # The layout of the previous sample; this first one matches nothing (no sample starts with 0xff).
    last = _Layout(b"\xff", b"", key="", source="", epoch=0, interface="", schema_id="")

    def decode(data: bytes, writer: int) -> T:
        nonlocal last
        layout = last
        head = layout.head
        if not data.startswith(head):
            found = layouts.get(data[: _head_length(data)]) if data[1] == 1 else None
            if found is None:
                return _decode_slow(data, writer, layouts, build, fallback)
            layout = last = found
            head = layout.head
        rest = layout.rest
        try:
            seq, count, stamp_ns, tail, n = rest.unpack_from(data, len(head))
        except struct.error:  # shorter than this layout: another tail (a shorter interface name, say)
            return _decode_slow(data, writer, layouts, build, fallback)
        if tail != layout.tail:
            return _decode_slow(data, writer, layouts, build, fallback)
        o = len(head) + rest.size
        payload = data[o : o + n]
        if len(payload) != n:
            raise ValueError(f"payload truncated: {len(payload)} of {n} bytes")
        return build(
            (
                layout.key, layout.source, layout.epoch, seq, count, stamp_ns, layout.interface, layout.schema_id,
                payload, writer,
            )
        )  # fmt: skip

    return decode


def _head_length(data: bytes) -> int:
    """Length of the head of a little endian XCDR1 sample: through epoch, padded so that seq is 8-aligned."""
    n: int
    (n,) = _U32.unpack_from(data, 4)
    o = (11 + n) & ~3  # after the key
    (n,) = _U32.unpack_from(data, o)
    o = (o + 11 + n) & ~3  # after the source and the epoch
    return o + ((4 - o) & 7)  # seq is 8-aligned relative to the body, which starts at offset 4


def _decode_slow(
    data: bytes,
    writer: int,
    layouts: dict[bytes, _Layout],
    build: Callable[[Fields], T],
    fallback: Callable[[bytes], Any],
) -> T:
    if data[1] != 1:
        sample = fallback(data)
        key, source, epoch, seq, count, stamp_ns, interface, schema_id, payload = (
            getattr(sample, name) for name in _MEMBERS
        )
        return build((key, source, epoch, seq, count, stamp_ns, interface, schema_id, bytes(payload), writer))
    fields = _decode_fields(data)
    _remember(layouts, data, fields)
    return build((*fields, writer))


#: The nine envelope members as they are on the wire.
_WireFields = tuple[str, str, int, int, int, int, str, str, bytes]


def _decode_fields(data: bytes) -> _WireFields:
    """The nine envelope members of a little endian XCDR1 sample, field by field."""
    u32 = _U32.unpack_from
    (n,) = u32(data, 4)
    o = 8 + n
    key = data[8 : o - 1].decode()
    o = (o + 3) & ~3
    (n,) = u32(data, o)
    source = data[o + 4 : o + 3 + n].decode()
    o = (o + 7 + n) & ~3
    (epoch,) = u32(data, o)
    o += 4
    o += (4 - o) & 7  # 8-aligned relative to the body, which starts at offset 4
    seq, count, stamp_ns = _MIDDLE.unpack_from(data, o)
    o += 24
    (n,) = u32(data, o)
    interface = data[o + 4 : o + 3 + n].decode()
    o = (o + 7 + n) & ~3
    (n,) = u32(data, o)
    schema_id = data[o + 4 : o + 3 + n].decode()
    o = (o + 7 + n) & ~3
    (n,) = u32(data, o)
    payload = data[o + 4 : o + 4 + n]
    if len(payload) != n:
        raise ValueError(f"payload truncated: {len(payload)} of {n} bytes")
    return key, source, epoch, seq, count, stamp_ns, interface, schema_id, payload


def _remember(layouts: dict[bytes, _Layout], data: bytes, fields: _WireFields) -> None:
    """Keep the layout of a sample that :func:`_decode_fields` decoded, for :func:`make_decoder`'s one-call path."""
    key, source, epoch, _, _, _, interface, schema_id, _ = fields
    head = bytearray(_XCDR1_LE)
    _put_string(head, key)
    _put_string(head, source)
    head += _U32.pack(epoch)
    head += bytes(-(len(head) - len(_XCDR1_LE)) & 7)
    tail = bytearray()
    _put_string(tail, interface)
    _put_string(tail, schema_id)
    # Only a sample exactly as hardpoint's encoder writes it (zero padding) defines a layout:
    # the one-call path then compares the whole head and tail byte for byte.
    h = len(head)
    if data[:h] != head or data[h + 24 : h + 24 + len(tail)] != tail:
        return
    if len(layouts) >= _LAYOUT_CACHE_SIZE:
        layouts.clear()
    layouts[bytes(head)] = _Layout(
        bytes(head), bytes(tail), key=key, source=source, epoch=epoch, interface=interface, schema_id=schema_id
    )


# -- raw sample I/O --------------------------------------------------------------

#: Every sample, whatever its sample, view and instance state.
_ANY_STATE: Final = SampleState.Any | ViewState.Any | InstanceState.Any


def take(reader: int, max_samples: int) -> list[tuple[bytes, SampleInfo]] | int:
    """Take up to ``max_samples`` serialized samples from the reader with handle ``reader``.

    :returns: ``(serialized sample, sample info)`` pairs, or a negative DDS return code.
    """
    result: list[tuple[bytes, SampleInfo]] | int = _ddspy_take(reader, _ANY_STATE, max_samples)
    return result


def taker(reader: int, max_samples: int) -> Callable[[], list[tuple[bytes, SampleInfo]] | int]:
    """:func:`take` bound to one reader and size, called without a Python frame (the dispatch thread's take)."""
    return functools.partial(_ddspy_take, reader, _ANY_STATE, max_samples)


# ``dds_write(writer, &container)`` where ``container`` is the ddspy sample container
# ``{void *usample; size_t usample_size;}``. CFUNCTYPE releases the GIL during the call.
_dds_write: Callable[[int, bytes], int] = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p)(
    ("dds_write", DDS._dll_handle)
)
_CONTAINER: Final = struct.Struct("PN")
#: Offset of the character data in a CPython ``bytes`` object.
_BYTES_DATA_OFFSET: Final = sys.getsizeof(b"") - 1


def _bytes_address_is_known() -> bool:
    """True when ``id(b) + _BYTES_DATA_OFFSET`` is the address of the data of ``b`` (CPython layout)."""
    if platform.python_implementation() != "CPython":  # pragma: no cover - CPython only in CI
        return False
    probe = b"hardpoint: where do bytes keep their data?"
    return ctypes.string_at(id(probe) + _BYTES_DATA_OFFSET, len(probe)) == probe


if _bytes_address_is_known():

    def write(writer: int, data: bytes) -> int:
        """Write one serialized sample with the writer whose handle is ``writer``; returns the DDS return code."""
        return _dds_write(writer, _CONTAINER.pack(id(data) + _BYTES_DATA_OFFSET, len(data)))

else:  # pragma: no cover - other layouts: the portable, slower way to the same address

    def write(writer: int, data: bytes) -> int:
        """Write one serialized sample with the writer whose handle is ``writer``; returns the DDS return code."""
        return _dds_write(writer, _CONTAINER.pack(ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value, len(data)))


# -- waitsets ----------------------------------------------------------------------

_dds_waitset_attach: Callable[[int, int, int], int] = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_ssize_t
)(("dds_waitset_attach", DDS._dll_handle))
_dds_waitset_detach: Callable[[int, int], int] = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)(
    ("dds_waitset_detach", DDS._dll_handle)
)
#: ``dds_waitset_wait(waitset, dds_attach_t *xs, size_t nxs, dds_duration_t reltimeout)``; releases the GIL.
_dds_waitset_wait: Callable[[int, Any, int, int], int] = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_ssize_t), ctypes.c_size_t, ctypes.c_int64
)(("dds_waitset_wait", DDS._dll_handle))


def waitset_attach(waitset: int, entity: int, x: int) -> int:
    """Attach the entity with handle ``entity``, reported as ``x`` by :func:`waitset_wait`; the DDS return code."""
    return _dds_waitset_attach(waitset, entity, x)


def waitset_detach(waitset: int, entity: int) -> int:
    """Detach the entity with handle ``entity``; returns the DDS return code."""
    return _dds_waitset_detach(waitset, entity)


def triggered_buffer(size: int) -> Any:
    """A buffer for :func:`waitset_wait` with room for ``size`` attach arguments."""
    return (ctypes.c_ssize_t * max(1, size))()


def waitset_wait(waitset: int, buffer: Any, timeout_ns: int) -> list[int] | int:
    """Wait until an attached entity triggers or ``timeout_ns`` passes; the attach arguments of those that did.

    At most ``len(buffer)`` are reported (:func:`triggered_buffer`): give it room for every attached entity.

    :returns: attach arguments (empty on time-out), or the negative DDS return code.
    """
    n = _dds_waitset_wait(waitset, buffer, len(buffer), timeout_ns)
    if n <= 0:
        return [] if n == 0 else n
    triggered: list[int] = buffer[: min(n, len(buffer))]
    return triggered
