"""The MCAP side: writing a recording, reading it back raw, and recovering a crashed one.

Layout of a recording (what other tools can rely on):

* one **schema** per interface: name = full protobuf message name
  (``hardpoint.track.v1.FusedTrack``), encoding ``protobuf``, data = the
  serialized ``FileDescriptorSet`` of the message's file and all its imports
  (``mcap_protobuf.schema.build_file_descriptor_set``), so any MCAP reader with
  a protobuf decoder (``mcap_protobuf.decoder.DecoderFactory``, Foxglove)
  decodes every message without hardpoint installed;
* one **channel** per (topic, writing module): topic = the interface's bus
  topic (``hp/track/v1/fused``), message encoding ``protobuf``, metadata
  ``interface``, ``schema_id`` (the bus schema identity), ``qos`` and
  ``source`` (the module that published). Readers that select by topic get
  every source of that topic;
* per **message**: ``log_time`` = when the recorder received it (bus clock, ns),
  ``publish_time`` = the envelope's time of validity (``SampleInfo.stamp_ns``),
  ``sequence`` = the envelope sequence number modulo 2**32 (MCAP's field is 32
  bits; the bus counts per source and, for keyed interfaces, per key), data =
  the serialized message (one per record; bus batches are split);
* a **metadata** record ``hardpoint.recording`` (recorder version, module
  name, start time, recorded interfaces).

Messages are in the file in the order they were received, which is also
``log_time`` order unless the wall clock stepped back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

from google.protobuf.message import Message
from mcap.exceptions import InvalidMagic
from mcap.reader import make_reader
from mcap.records import Channel as McapChannel
from mcap.records import Message as McapMessage
from mcap.records import Metadata as McapMetadata
from mcap.records import Schema as McapSchema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from mcap_protobuf.schema import build_file_descriptor_set

from hardpoint_mod_recorder._version import VERSION

__all__ = ["METADATA_NAME", "Recorded", "RecordingWriter", "read", "recover"]

#: Name of the metadata record describing the recording.
METADATA_NAME: Final = "hardpoint.recording"
#: Suffix of a recording being written; the file gets its final name when finished.
PART_SUFFIX: Final = ".part"

Compression = Literal["zstd", "lz4", "none"]
_COMPRESSION: Final = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}


class RecordingWriter:
    """Writes one recording to ``<path>.part`` and renames it to ``path`` when finished.

    So the file at ``path`` is always a complete MCAP file; after a crash only
    ``<path>.part`` exists (see :func:`recover`).
    """

    def __init__(self, path: Path, *, chunk_size: int = 1024 * 1024, compression: Compression = "zstd") -> None:
        self.path = path
        self.part = path.with_name(path.name + PART_SUFFIX)
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self.part.open("wb")
        self._writer = McapWriter(self._file, chunk_size=chunk_size, compression=_COMPRESSION[compression])
        self._writer.start(profile="", library=f"hardpoint-mod-recorder/{VERSION}")
        self._schemas: dict[str, int] = {}
        self._channels: dict[tuple[str, str], int] = {}
        #: Messages written.
        self.count = 0
        self.finished = False

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        self._writer.add_metadata(name, data)

    def channel(self, message_type: type[Message], *, topic: str, source: str, metadata: dict[str, str]) -> int:
        """The channel id for (topic, source), registering schema and channel on first use."""
        key = (topic, source)
        channel_id = self._channels.get(key)
        if channel_id is None:
            name = message_type.DESCRIPTOR.full_name
            schema_id = self._schemas.get(name)
            if schema_id is None:
                fds = build_file_descriptor_set(message_type).SerializeToString()
                schema_id = self._schemas[name] = self._writer.register_schema(name, "protobuf", fds)
            channel_id = self._writer.register_channel(
                topic, "protobuf", schema_id, metadata={**metadata, "source": source}
            )
            self._channels[key] = channel_id
        return channel_id

    def write(self, channel_id: int, *, log_time_ns: int, publish_time_ns: int, sequence: int, data: bytes) -> None:
        self._writer.add_message(
            channel_id, log_time=log_time_ns, data=data, publish_time=publish_time_ns, sequence=sequence & 0xFFFFFFFF
        )
        self.count += 1

    def flush(self) -> None:
        """Close the current chunk and push everything to the OS (bounds what a crash loses)."""
        if not self.finished:
            self._writer.flush()  # type: ignore[no-untyped-call]  # mcap 1.6 leaves it unannotated

    def finish(self) -> Path:
        """Write the summary and footer, close the file, give it its final name; idempotent."""
        if not self.finished:
            self.finished = True
            try:
                self._writer.finish()  # type: ignore[no-untyped-call]
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
            os.replace(self.part, self.path)
        return self.path

    def abandon(self) -> None:
        """Close without finishing (the ``.part`` file stays, as after a crash)."""
        if not self.finished:
            self.finished = True
            with contextlib.suppress(OSError):
                self._file.close()


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded message, undecoded."""

    log_time_ns: int
    publish_time_ns: int
    sequence: int
    topic: str
    #: Full interface name (the schema name).
    interface: str
    #: Bus schema identity at recording time ("" if the channel does not say).
    schema_id: str
    #: Module that published it ("" if the channel does not say).
    source: str
    data: bytes


def read(path: str | os.PathLike[str], *, topics: Iterable[str] | None = None) -> Iterator[Recorded]:
    """Every message of a recording in file (= receive) order, undecoded.

    :param topics: only these topics (or interface names); all when None.
    :raises mcap.exceptions.McapError: the file is not a valid MCAP file.
    """
    wanted = None if topics is None else set(topics)
    with open(path, "rb") as f:
        reader = make_reader(f)
        schema: McapSchema | None
        channel: McapChannel
        message: McapMessage
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            interface = schema.name if schema is not None else channel.metadata.get("interface", "")
            if wanted is not None and channel.topic not in wanted and interface not in wanted:
                continue
            yield Recorded(
                log_time_ns=message.log_time,
                publish_time_ns=message.publish_time,
                sequence=message.sequence,
                topic=channel.topic,
                interface=interface,
                schema_id=channel.metadata.get("schema_id", ""),
                source=channel.metadata.get("source", ""),
                data=message.data,
            )


def metadata(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The metadata records of a recording, by name."""
    with open(path, "rb") as f:
        return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}


def recover(part: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Rewrite what survives of an unfinished recording (a crash's ``.part``) as a valid MCAP file.

    Every chunk written before the crash is kept (the recorder closes a chunk at
    least every ``flush_period_s``); a chunk cut short by the crash is lost.

    :returns: the number of messages recovered.
    :raises mcap.exceptions.InvalidMagic: ``part`` does not start like an MCAP file.
    """
    schemas: dict[int, int] = {}
    channels: dict[int, int] = {}
    count = 0
    with open(part, "rb") as src, open(out, "wb") as dst:
        writer = McapWriter(dst)
        writer.start(profile="", library="hardpoint-mod-recorder recover")
        records = StreamReader(src, validate_crcs=True).records
        while True:
            try:
                record: Any = next(records)
            except StopIteration:
                break
            except InvalidMagic:
                raise  # not an MCAP file at all
            except Exception:  # the torn end: truncated record, or a torn chunk failing in the decompressor
                break
            if isinstance(record, McapSchema):
                schemas[record.id] = writer.register_schema(record.name, record.encoding, record.data)
            elif isinstance(record, McapChannel):
                channels[record.id] = writer.register_channel(
                    record.topic, record.message_encoding, schemas.get(record.schema_id, 0), dict(record.metadata)
                )
            elif isinstance(record, McapMessage) and record.channel_id in channels:
                writer.add_message(
                    channels[record.channel_id], record.log_time, record.data, record.publish_time, record.sequence
                )
                count += 1
            elif isinstance(record, McapMetadata):
                writer.add_metadata(record.name, dict(record.metadata))
        writer.finish()  # type: ignore[no-untyped-call]
    return count
