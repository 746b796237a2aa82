"""The recorder module: see the package docstring for how it is written and why."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hardpoint import Bus, InterfaceSpec, Manifest, ModuleContext, SampleInfo, all_interfaces, hookimpl
from hardpoint_mod_recorder._mcap import METADATA_NAME, PART_SUFFIX, RecordingWriter
from hardpoint_mod_recorder._version import VERSION

__all__ = ["ConfigError", "RecorderConfig", "RecorderModule"]


class ConfigError(ValueError):
    """The recorder's configuration is invalid; the message names every field and the reason."""


class RecorderConfig(BaseModel):
    """The module's configuration (the ``config`` table of its ``[[modules]]`` entry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Output file. ``{time}`` is replaced by the UTC start time (``20250101T120000Z``).
    #: Relative paths are relative to the working directory of the module's process.
    path: str = Field(min_length=1)
    #: Interfaces to record (full names); default: every interface of the platform interface set.
    interfaces: tuple[str, ...] | None = None
    #: Replace an existing file at ``path``; otherwise the recording goes to ``<stem>-1<suffix>``, ``-2``, ...
    overwrite: bool = False
    #: Close the current chunk and hand it to the OS this often (s): what a crash can lose at most.
    flush_period_s: float = Field(default=1.0, gt=0, le=60)
    #: Largest uncompressed chunk (bytes) before it is closed anyway.
    chunk_size: int = Field(default=1024 * 1024, ge=1024)
    compression: Literal["zstd", "lz4", "none"] = "zstd"

    @field_validator("interfaces")
    @classmethod
    def _known(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is None:
            return None
        known = all_interfaces()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown interface(s) {', '.join(unknown)}; the interface set has {', '.join(known)}")
        if len(set(names)) != len(names):
            raise ValueError("lists an interface twice")
        return names


def parse_config(raw: Mapping[str, Any]) -> RecorderConfig:
    """Validate the recorder's configuration.

    :raises ConfigError: naming each offending field and the reason.
    """
    try:
        return RecorderConfig.model_validate(dict(raw))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"recorder configuration is invalid: {problems}") from None


def output_path(template: str, start_ns: int, *, overwrite: bool) -> Path:
    """Where a recording started at ``start_ns`` goes: ``{time}`` filled in, and a free name unless overwriting."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start_ns // 1_000_000_000))
    path = Path(template.replace("{time}", stamp))
    if overwrite:
        return path
    candidate, n = path, 0
    while candidate.exists() or candidate.with_name(candidate.name + PART_SUFFIX).exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class RecorderModule:
    """Records bus interfaces to MCAP while active; the file is finished on deactivate and shutdown."""

    # requires=(): see the package docstring ("Why the manifest requires nothing").
    manifest = Manifest(
        name="recorder",
        version=VERSION,
        supplier="hardpoint project",
        provides=(),
        requires=(),
        # What it reads, declared (CF-BUS-008): every interface, as optional inputs that never hold up its start.
        uses=("*",),
        description="Records bus interfaces to MCAP with protobuf schemas and replays recordings onto the bus",
    )

    def __init__(self) -> None:
        self._writer: RecordingWriter | None = None
        self._bus: Bus | None = None
        #: Path of every recording finished by this instance, in order.
        self.finished: list[Path] = []

    # -- lifecycle ----------------------------------------------------------------

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self._ctx = ctx
        self._config = parse_config(ctx.config)  # raises ConfigError: the host reports it
        specs = all_interfaces()
        names = self._config.interfaces if self._config.interfaces is not None else tuple(specs)
        self._specs: list[InterfaceSpec] = [specs[n] for n in names]
        ctx.every(self._config.flush_period_s, self._flush)

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> None:
        cfg = self._config
        start = ctx.now_ns()
        path = output_path(cfg.path, start, overwrite=cfg.overwrite)
        writer = RecordingWriter(path, chunk_size=cfg.chunk_size, compression=cfg.compression)
        writer.add_metadata(
            METADATA_NAME,
            {
                "recorder_version": VERSION,
                "module": ctx.name,
                "start_time_ns": str(start),
                "interfaces": ",".join(s.name for s in self._specs),
            },
        )
        self._writer = writer
        # A bus of its own, allowed to subscribe to exactly the configured interfaces (see the docstring).
        bus = Bus(ctx.bus.transport, module=ctx.name, provides=(), requires=[s.name for s in self._specs])
        self._bus = bus
        for spec in self._specs:
            bus.subscribe(spec.message_type, self._recorder_for(spec), with_info=True)
        ctx.log.info("recording %d interface(s) to %s", len(self._specs), path)

    @hookimpl
    def on_deactivate(self, ctx: ModuleContext) -> None:
        self._stop()

    @hookimpl
    def on_shutdown(self, ctx: ModuleContext) -> None:
        self._stop()  # shutdown may come straight from ACTIVE, without a deactivate

    @hookimpl
    def on_error(self, ctx: ModuleContext, error: BaseException) -> None:
        self._stop()

    # -- recording ----------------------------------------------------------------

    def _recorder_for(self, spec: InterfaceSpec) -> Callable[[Message, SampleInfo], None]:
        metadata = {"interface": spec.name, "schema_id": spec.schema_id, "qos": spec.qos.name}
        message_type = spec.message_type
        topic = spec.topic

        def record(message: Message, info: SampleInfo) -> None:
            writer = self._writer
            if writer is None or writer.finished:
                return
            try:
                channel = writer.channel(message_type, topic=topic, source=info.source, metadata=metadata)
                writer.write(
                    channel,
                    log_time_ns=self._ctx.now_ns(),
                    publish_time_ns=info.stamp_ns,
                    sequence=info.seq,
                    data=message.SerializeToString(),
                )
            except OSError as e:
                self._fail(f"cannot write {writer.part}: {e}")

        return record

    def _flush(self) -> None:
        writer = self._writer
        if writer is None or writer.finished:
            return
        try:
            writer.flush()
        except OSError as e:
            self._fail(f"cannot write {writer.part}: {e}")

    def _fail(self, reason: str) -> None:
        self._ctx.log.error("recording stopped: %s", reason)
        self._ctx.set_health("failed", reason)
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None

    def _stop(self) -> None:
        """Stop receiving, then finish the file (summary, footer, final name)."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        writer, self._writer = self._writer, None
        if writer is not None and not writer.finished:
            path = writer.finish()
            self.finished.append(path)
            self._ctx.log.info("recording finished: %s (%d messages)", path, writer.count)
