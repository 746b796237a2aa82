"""The machinery of the robustness checks: feed a hosted module generated inputs and watch what it does.

:class:`InputRig` wraps a :class:`~._harness.HostedModule` (hosted without feeders, so every
input it receives is one the rig sent) with

* a watch on the module's heartbeat (``hardpoint.core.v1.ModuleHealth``), whose counters
  (``sub:<interface>.<count>``) tell what the module's subscriptions received and refused;
* a watch on every interface the module provides: every sample it publishes is decoded and
  field-checked (:func:`~._strategies.field_violations`);
* :class:`HostileWriter` s: raw Cyclone DDS writers of the SDK's envelope type on an input
  topic, in their own participant, which write any header and payload.

The pure part, :func:`expected_refusals` and :func:`accounting_problems`, decides from what was
sent and what the counters say whether every sample is accounted for.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from hardpoint_runtime.conformance._harness import HarnessError, HostedModule, contract_channel, wait_until
from hardpoint_runtime.conformance._strategies import field_violations

if TYPE_CHECKING:
    from google.protobuf.message import Message

    import hardpoint

__all__ = [
    "COUNTERS",
    "RECEIVE_COUNTERS",
    "HostileWriter",
    "InputRig",
    "Sent",
    "accounting_problems",
    "expected_refusals",
    "input_interfaces",
]

#: Counters of one subscription, as the SDK names them (``SubscriptionCounters``).
COUNTERS: Final = (
    "delivered",
    "undecodable",
    "wrong_interface",
    "schema_mismatch",
    "duplicates",
    "lost",
    "callback_errors",
)
#: Counters that refuse a sample before module code sees it.
RECEIVE_COUNTERS: Final = ("undecodable", "wrong_interface", "schema_mismatch", "duplicates")
#: Heartbeat period of a module hosted by the rig (fast, so counters settle quickly).
HEALTH_PERIOD_S: Final = 0.2
#: Longest wait for the module's counters to account for what was sent (generous: CI may be loaded).
SETTLE_TIMEOUT_S: Final = 15.0
#: Longest wait for a hostile writer to match the module's reader.
MATCH_TIMEOUT_S: Final = 15.0
#: Source name the hostile writers stamp on their envelopes.
HOSTILE_SOURCE: Final = "conformance.hostile"
#: Most output problems kept for the failure message.
MAX_PROBLEMS: Final = 20


def input_interfaces(manifest: hardpoint.Manifest, known: Mapping[str, hardpoint.InterfaceSpec]) -> list[str]:
    """The interfaces a module reads: ``requires`` and ``uses`` (``"*"`` and unknown names left out), each once."""
    names = [n for n in (*manifest.requires, *manifest.uses) if n != "*" and n in known]
    return list(dict.fromkeys(names))


# -- accounting (pure) ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sent:
    """What was sent to one input interface: messages that must reach module code, and refusals by counter."""

    good: int = 0
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RECEIVE_COUNTERS, 0))

    def add(self, other: Sent) -> None:
        self.good += other.good
        for name, n in other.refused.items():
            self.refused[name] += n


def expected_refusals(*, interface_ok: bool, schema_ok: bool, count: int, decodes: bool, replay: bool) -> Sent:
    """What one envelope must do to a subscription's counters, following the normative receive order.

    IF-ENV-RX-ORDER: wrong interface, then wrong schema id (both count ``count`` when it is a possible
    batch, ``1..MAX_BATCH``, else 1: SDK-BUS-ID-007), then a
    count outside ``1..MAX_BATCH`` (one undecodable), then a replayed sequence (``count``
    duplicates), then a payload that does not decode (``count`` undecodable); else ``count``
    messages reach module code.
    """
    from hardpoint._bus import MAX_BATCH

    sent = Sent()
    claimed = count if 1 <= count <= MAX_BATCH else 1
    if not interface_ok:
        sent.refused["wrong_interface"] = claimed
    elif not schema_ok:
        sent.refused["schema_mismatch"] = claimed
    elif not 1 <= count <= MAX_BATCH:
        sent.refused["undecodable"] = 1
    elif replay:
        sent.refused["duplicates"] = count
    elif not decodes:
        sent.refused["undecodable"] = count
    else:
        sent.good = count
    return sent


def accounting_problems(sent: Sent, delta: Mapping[str, int], *, reliable: bool) -> list[str]:
    """Why the counter increase ``delta`` does not account for ``sent``; empty when it does.

    Reliable interfaces (state, event, command): every refusal counter rose by exactly what was sent,
    and ``delivered + callback_errors + lost`` by what was good (``lost``: a keep-last state reader may
    replace a sample of the same key before the module takes it; the gap in its sequence shows it).
    Best-effort (stream) interfaces may drop samples: no counter may rise by more than was sent.
    """
    problems: list[str] = []
    for name in RECEIVE_COUNTERS:
        want, got = sent.refused.get(name, 0), delta.get(name, 0)
        if got > want or (reliable and got != want):
            problems.append(f"{name}: sent {want} such sample(s), the counter rose by {got}")
    reached = delta.get("delivered", 0) + delta.get("callback_errors", 0)
    if reliable and reached + delta.get("lost", 0) < sent.good:
        problems.append(
            f"delivered+callback_errors+lost: sent {sent.good} good message(s), the counters rose by "
            f"{reached + delta.get('lost', 0)}"
        )
    if reached > sent.good:
        problems.append(f"delivered+callback_errors: sent {sent.good} good message(s), the counters rose by {reached}")
    return problems


def settled(sent: Sent, delta: Mapping[str, int], *, reliable: bool) -> bool:
    """Whether the counters account for everything sent (reliable), or at least nothing more (best effort)."""
    return not accounting_problems(sent, delta, reliable=reliable)


# -- hostile writers ------------------------------------------------------------------------------------------


class HostileWriter:
    """A raw Cyclone DDS writer of the SDK's envelope type on an input topic, in its own participant.

    It uses the SDK's envelope IDL types and the writer QoS of the interface's class, so it
    matches the module's reader; every header field and the payload are the caller's.
    """

    def __init__(self, spec: hardpoint.InterfaceSpec, domain_id: int) -> None:
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic

        from hardpoint._dds import _qos
        from hardpoint._dds._envelope import Envelope, KeyedEnvelope

        self.spec = spec
        self.keyed = spec.keyed
        self._type: Any = KeyedEnvelope if spec.keyed else Envelope
        channel = contract_channel(spec)
        # The harness's probe transport created this domain id (with its discovery tag) in this process:
        # a participant on the same id shares that domain and its configuration.
        self._participant = DomainParticipant(domain_id)
        self._topic = Topic(self._participant, spec.topic, self._type)
        self._writer = DataWriter(self._participant, self._topic, _qos.writer_qos(channel))
        self.epoch = int.from_bytes(os.urandom(4), "little")
        self.written = 0

    def wait_matched(self, timeout_s: float = MATCH_TIMEOUT_S) -> bool:
        """Wait until a reader (the module's) matches; volatile samples written before that are lost."""
        return bool(wait_until(self._writer.get_matched_subscriptions, timeout_s))

    def write(
        self,
        payload: bytes,
        *,
        seq: int,
        key: str = "",
        count: int = 1,
        interface: str | None = None,
        schema_id: str | None = None,
        epoch: int | None = None,
    ) -> None:
        sample = self._type(
            key,
            HOSTILE_SOURCE,
            self.epoch if epoch is None else epoch,
            seq,
            count,
            time.time_ns(),
            self.spec.name if interface is None else interface,
            self.spec.schema_id if schema_id is None else schema_id,
            payload,
        )
        self._writer.write(sample)
        self.written += 1

    def close(self) -> None:
        for entity in (self._writer, self._topic, self._participant):
            entity.__del__()  # delete the DDS entities now, not at garbage collection


# -- the rig --------------------------------------------------------------------------------------------------


class InputRig:
    """A hosted module fed only by the rig, with its heartbeat and its outputs watched.

    :param host: a HostedModule not yet started; the rig starts and activates it.
    :raises HarnessError: the module could not be hosted or activated.
    """

    def __init__(self, host: HostedModule) -> None:
        import hardpoint
        from hardpoint.core.v1 import health_pb2

        self.host = host
        self.name = host.name
        self.known = hardpoint.all_interfaces()
        self._lock = threading.Lock()
        self._health: Any = None
        self._health_at = 0.0
        self.output_counts: dict[str, int] = {}
        self.output_problems: list[str] = []
        self._writers: dict[str, HostileWriter] = {}
        probe = host.probe
        probe.subscribe(health_pb2.ModuleHealth, self._on_health)
        self._outputs = []
        for name in host.manifest.provides:
            spec = self.known.get(name)
            if spec is not None:
                sub = probe.subscribe(spec.message_type, self._on_output, with_info=True, queue_depth=1)
                self._outputs.append(sub)
        host.activate()

    # -- heartbeat and counters --------------------------------------------------------------------------------

    def _on_health(self, message: Any) -> None:
        if message.module == self.name:
            with self._lock:
                self._health = message
                self._health_at = time.monotonic()

    def health(self) -> Any:
        with self._lock:
            return self._health

    def beat_age_s(self) -> float:
        """Seconds since the last heartbeat of the module (infinite before the first)."""
        with self._lock:
            return time.monotonic() - self._health_at if self._health is not None else float("inf")

    def counters(self, interface: str) -> dict[str, int] | None:
        """The module's subscription counters of ``interface`` from its last heartbeat; None if it does not read it."""
        health = self.health()
        if health is None:
            return None
        prefix = f"sub:{interface}."
        found = {k[len(prefix) :]: int(v) for k, v in health.counters.items() if k.startswith(prefix)}
        return {name: found.get(name, 0) for name in COUNTERS} if found else None

    def wait_first_beat(self, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
        return bool(wait_until(lambda: self.health() is not None, timeout_s))

    def settle(self, interface: str, baseline: Mapping[str, int], sent: Sent) -> dict[str, int]:
        """Wait until the counters account for ``sent`` (or stop changing, best effort) and return their increase."""
        reliable = self.known[interface].qos.name != "STREAM"
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        last: dict[str, int] | None = None
        stable_since = time.monotonic()
        while True:
            now = self.counters(interface) or dict.fromkeys(COUNTERS, 0)
            delta = {k: now[k] - baseline.get(k, 0) for k in COUNTERS}
            if reliable and settled(sent, delta, reliable=True):
                return delta
            if delta != last:
                last, stable_since = delta, time.monotonic()
            # Best effort: done once the counters stopped moving for a few heartbeats.
            if not reliable and time.monotonic() - stable_since > 4 * HEALTH_PERIOD_S and self.beat_age_s() < 1.0:
                return delta
            if time.monotonic() > deadline:
                return delta
            time.sleep(HEALTH_PERIOD_S / 2)

    # -- outputs ---------------------------------------------------------------------------------------------

    def _on_output(self, message: Message, info: hardpoint.SampleInfo) -> None:
        if info.source != self.name:
            return
        violations = field_violations(message)
        with self._lock:
            self.output_counts[info.interface] = self.output_counts.get(info.interface, 0) + 1
            if violations and len(self.output_problems) < MAX_PROBLEMS:
                shown = "; ".join(str(v) for v in violations[:4])
                self.output_problems.append(f"{info.interface} (sequence {info.seq}): {shown}")

    def undecodable_outputs(self) -> list[str]:
        """Provided interfaces on which the probe refused samples (not decodable, wrong schema id or interface)."""
        out = []
        for sub in self._outputs:
            c = sub.counters
            bad = c.undecodable + c.schema_mismatch + c.wrong_interface
            if bad:
                out.append(
                    f"{sub.spec.name}: {c.undecodable} undecodable, {c.schema_mismatch} with a wrong schema id, "
                    f"{c.wrong_interface} with a wrong interface name"
                )
        return out

    # -- hostile writers -------------------------------------------------------------------------------------

    def hostile(self, interface: str) -> HostileWriter:
        """The hostile writer of ``interface`` (made and matched on first use).

        :raises HarnessError: it did not match the module's reader in time.
        """
        writer = self._writers.get(interface)
        if writer is None:
            writer = self._writers[interface] = HostileWriter(self.known[interface], self.host.domain_id)
            if not writer.wait_matched():
                raise HarnessError(
                    f"module {self.name!r}: no reader of {interface} matched a writer within {MATCH_TIMEOUT_S:g} s"
                )
        return writer

    # -- survival --------------------------------------------------------------------------------------------

    def survival_problems(self) -> list[str]:
        """Why the module is not alive and ACTIVE with a beating heart right now; empty when it is."""
        host = self.host
        if not host.alive():
            from hardpoint_runtime._process import describe_exit

            code = host.exit_code()
            how = describe_exit(code) if code is not None else "ended"
            return [f"the module process {how}\n{host.log_tail(30)}"]
        state = host.status()
        if state["state"] != "active":
            return [f"the module left ACTIVE: it is {state['state'] or 'not answering'} {state['error']}".rstrip()]
        # The heartbeat comes from the dispatch thread: a module stuck in a callback stops beating.
        fresh = wait_until(lambda: self.beat_age_s() < 10 * HEALTH_PERIOD_S, 10.0)
        if not fresh:
            return [f"no heartbeat for {self.beat_age_s():.1f} s: the module's dispatch thread is stuck"]
        return []

    def recover(self) -> None:
        """Bring a module that crashed or left ACTIVE back to ACTIVE in a fresh worker (for the next check)."""
        self.host.restart()
        with self._lock:
            self._health = None
        self.host.activate()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self.host.close()


def host_for_inputs(module: str, options: Mapping[str, Any]) -> HostedModule:
    """A HostedModule of ``module`` with no feeders (the rig is its only input) and a fast heartbeat."""
    return HostedModule(module, feeders=[], health_period_s=HEALTH_PERIOD_S, **options)


def describe(messages: Sequence[Message], limit: int = 3) -> str:
    """The last ``limit`` messages in short text form, for failure messages."""
    from google.protobuf import text_format

    shown = [text_format.MessageToString(m, as_one_line=True)[:300] for m in messages[-limit:]]
    return "\n".join(f"  {s}" for s in shown)
