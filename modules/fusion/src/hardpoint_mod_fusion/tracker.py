"""The tracker core: pure, deterministic multi-sensor tracking (no bus, no clock, no IO).

Feed it measurements with :meth:`Tracker.process` and read the picture with
:meth:`Tracker.tracks`; the same input always gives the same output, however
it is split into calls. See the package docstring for the algorithm.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped, unused-ignore]

from hardpoint_mod_fusion.config import TrackerConfig
from hardpoint_mod_fusion.geo import LocalFrame

__all__ = [
    "DroppedTrack",
    "Measurement",
    "Source",
    "TrackState",
    "Tracker",
    "TrackerEvents",
    "TrackerStats",
    "cv_process_noise",
    "cv_transition",
    "gnn_assign",
    "kf_predict",
    "kf_update",
    "kf_update_retrodicted",
    "unpack_upper_triangle",
]

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NS = 1_000_000_000
#: Measurement matrix of the 4-state model: position is observed.
_H: Array = np.hstack([np.eye(2), np.zeros((2, 2))])
_I4: Array = np.eye(4)


# -- Kalman filter of the nearly-constant-velocity model ------------------------------------------------


def cv_transition(dt_s: float) -> Array:
    """State transition of ``[north, east, v_north, v_east]`` over ``dt_s`` seconds (negative: backwards)."""
    f = np.eye(4)
    f[0, 2] = f[1, 3] = dt_s
    return f


def cv_process_noise(dt_s: float, q_m2ps3: float) -> Array:
    """Process noise of ``dt_s`` seconds of white acceleration of spectral density ``q_m2ps3`` (per axis).

    Per axis ``q * [[dt^3/3, dt^2/2], [dt^2/2, dt]]``; ``|dt|`` is used, so that a retrodiction gains
    uncertainty too.
    """
    dt = abs(dt_s)
    a, b, c = q_m2ps3 * dt**3 / 3.0, q_m2ps3 * dt**2 / 2.0, q_m2ps3 * dt
    return np.array([[a, 0.0, b, 0.0], [0.0, a, 0.0, b], [b, 0.0, c, 0.0], [0.0, b, 0.0, c]])


def kf_predict(x: Array, p: Array, dt_s: float, q_m2ps3: float) -> tuple[Array, Array]:
    """Predict state ``x`` and covariance ``p`` ``dt_s`` seconds ahead."""
    f = cv_transition(dt_s)
    return f @ x, f @ p @ f.T + cv_process_noise(dt_s, q_m2ps3)


def kf_update(x: Array, p: Array, z: Array, r: Array) -> tuple[Array, Array]:
    """Update with a position measurement ``z`` of covariance ``r`` (Joseph form)."""
    s = _H @ p @ _H.T + r
    k = np.linalg.solve(s, _H @ p).T  # P H^T S^-1, S and P symmetric
    x_new = x + k @ (z - _H @ x)
    a = _I4 - k @ _H
    p_new = a @ p @ a.T + k @ r @ k.T
    return x_new, 0.5 * (p_new + p_new.T)


def kf_update_retrodicted(
    x: Array, p: Array, z: Array, r: Array, *, dt_s: float, q_m2ps3: float
) -> tuple[Array, Array]:
    """Update the current state with a measurement taken ``-dt_s`` seconds earlier (``dt_s <= 0``).

    The measurement is compared with the state retrodicted to its time, ``H F(dt) x``; the gain uses the
    cross-covariance ``P F(dt)^T H^T`` between the current state and that prediction, and the innovation
    covariance adds the process noise of the gap. This one-step approximation neglects the correlation of
    the gap's process noise with the current state, which is small for gaps within the OOSM tolerance.
    """
    hf = _H @ cv_transition(dt_s)
    pxz = p @ hf.T
    s = hf @ p @ hf.T + cv_process_noise(dt_s, q_m2ps3)[:2, :2] + r
    k = np.linalg.solve(s, pxz.T).T
    x_new = x + k @ (z - hf @ x)
    p_new = p - k @ s @ k.T
    return x_new, 0.5 * (p_new + p_new.T)


# -- assignment ------------------------------------------------------------------------------------------


def gnn_assign(cost: Array, allowed: BoolArray) -> list[tuple[int, int]]:
    """Global nearest neighbour: the one-to-one pairs (row, column) among ``allowed`` ones that first
    make as many pairs as possible and then minimise the summed ``cost``.

    Pairs outside the gate (``allowed`` false) are given a cost larger than any sum of allowed costs, so
    :func:`scipy.optimize.linear_sum_assignment` uses them only when nothing else is left; they are
    removed from the result.
    """
    if cost.size == 0 or not allowed.any():
        return []
    finite = cost[allowed]
    big = 1.0 + 2.0 * float(np.abs(finite).sum()) + float(np.abs(finite).max()) * cost.shape[0]
    rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


def unpack_upper_triangle(values: Sequence[float]) -> Array | None:
    """The symmetric matrix of a ``hardpoint.core.v1.Covariance`` (6 values: 3x3, 21 values: 6x6), else ``None``."""
    n = {6: 3, 21: 6}.get(len(values))
    if n is None:
        return None
    m = np.zeros((n, n))
    rows, cols = np.triu_indices(n)
    m[rows, cols] = values
    m[cols, rows] = values
    return m


def _largest_eigenvalue(a: float, b: float, d: float) -> float:
    """Largest eigenvalue of the symmetric 2x2 matrix [[a, b], [b, d]]."""
    return 0.5 * (a + d) + math.sqrt(0.25 * (a - d) ** 2 + b * b)


def _predicted_position_variance(p: Array, dt_s: float, q_m2ps3: float) -> float:
    """Largest eigenvalue of the position block of the covariance ``p`` predicted ``dt_s`` ahead."""
    (pnn, pne, pnvn, pnve), (_, pee, pevn, peve), (_, _, pvnvn, pvnve), (_, _, _, pveve) = p.tolist()
    qa = q_m2ps3 * abs(dt_s) ** 3 / 3.0
    a = pnn + 2.0 * dt_s * pnvn + dt_s * dt_s * pvnvn + qa
    b = pne + dt_s * (pnve + pevn) + dt_s * dt_s * pvnve
    d = pee + 2.0 * dt_s * peve + dt_s * dt_s * pveve + qa
    return _largest_eigenvalue(a, b, d)


# -- data types ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """One sensor track sample, geo-referenced: the tracker's input.

    ``covariance`` is the upper triangle of the NED covariance of the position (6 values) or of position
    and velocity (21 values, of which the position block is used); ``None`` or anything else: the
    configured noise of the sensor. ``classification`` and ``identity`` are the values of the
    ``hardpoint.track.v1`` enums (0: unspecified).
    """

    sensor_id: str
    track_id: str
    time_ns: int
    latitude_deg: float
    longitude_deg: float
    height_m: float = 0.0
    covariance: tuple[float, ...] | None = None
    classification: int = 0
    classification_confidence: float = 0.0
    identity: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    """A sensor track that contributes to a fused track (the latest one of each sensor)."""

    sensor_id: str
    track_id: str
    last_measurement_time_ns: int


@dataclass(frozen=True, slots=True)
class TrackState:
    """A snapshot of one track, at its last update (``last_update_ns``)."""

    track_id: str
    confirmed: bool
    #: No update for ``coast_after_s`` at the tracker's current time.
    coasting: bool
    latitude_deg: float
    longitude_deg: float
    height_m: float
    #: Position in the tracker's local frame (m).
    north_m: float
    east_m: float
    velocity_north_mps: float
    velocity_east_mps: float
    #: Upper triangle of the 6x6 covariance of [n, e, d, vn, ve, vd] (21 values); vd is not estimated (0).
    covariance: tuple[float, ...]
    classification: int
    classification_confidence: float
    identity: int
    #: Hit ratio over the last ``confidence_window`` opportunities.
    confidence: float
    sources: tuple[Source, ...]
    first_update_ns: int
    last_update_ns: int
    update_count: int

    @property
    def position_std_m(self) -> float:
        """Standard deviation of the horizontal position along its worst axis (m)."""
        c = self.covariance
        return math.sqrt(_largest_eigenvalue(c[0], c[1], c[6]))  # (n,n), (n,e), (e,e)


@dataclass(frozen=True, slots=True)
class DroppedTrack:
    """A confirmed track that ended, with its last state and why."""

    state: TrackState
    reason: str


@dataclass(slots=True)
class TrackerEvents:
    """What one :meth:`Tracker.process` call changed in the confirmed picture."""

    #: Tracks confirmed (published for the first time), by id.
    confirmed: list[str] = field(default_factory=list)
    #: Confirmed tracks whose classification changed.
    reclassified: list[str] = field(default_factory=list)
    #: Confirmed tracks that ended; each is reported once.
    dropped: list[DroppedTrack] = field(default_factory=list)


@dataclass(slots=True)
class TrackerStats:
    """Counters since the tracker was made."""

    measurements: int = 0  #: measurements given to process()
    invalid: int = 0  #: refused: position not finite or out of range
    bad_covariance: int = 0  #: covariance given but not usable (wrong size, not positive definite): defaults used
    oosm_dropped: int = 0  #: older than the newest processed measurement by more than oosm_tolerance_s
    retrodicted: int = 0  #: older than the updated track's state, within tolerance: applied by retrodiction
    updates: int = 0  #: measurements assigned to a track
    not_initiated: int = 0  #: unassigned, too imprecise to start a track (bearing-only)
    in_gate_not_initiated: int = 0  #: unassigned, inside a confirmed track's gate: no new track
    tracks_initiated: int = 0  #: tentative tracks started
    tracks_confirmed: int = 0  #: tentative tracks confirmed
    tentative_discarded: int = 0  #: tentative tracks that failed M-of-N or timed out
    tracks_dropped: int = 0  #: confirmed tracks dropped


# -- internals -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Meas:
    """A measurement in the local frame."""

    src: Measurement
    t: int
    z: Array  # (2,) north, east
    r: Array  # (2, 2)
    down: float
    r_down: float
    can_initiate: bool


class _Track:
    __slots__ = (
        "class_reports",
        "confirmed",
        "down",
        "first",
        "first_ns",
        "hist",
        "id",
        "identity",
        "missed",
        "n_window",
        "p",
        "reported_class",
        "seen",
        "sources",
        "t",
        "update_count",
        "var_down",
        "x",
    )

    def __init__(self, track_id: str, m: _Meas, cfg: TrackerConfig) -> None:
        self.id = track_id
        self.x: Array = np.array([m.z[0], m.z[1], 0.0, 0.0])
        v = cfg.initial_velocity_std_mps**2
        self.p: Array = np.zeros((4, 4))
        self.p[:2, :2] = m.r
        self.p[2, 2] = self.p[3, 3] = v
        self.down = m.down
        self.var_down = m.r_down
        self.t = m.t
        self.first_ns = m.t
        self.update_count = 0
        self.confirmed = False
        #: hits (True) and misses of the first N opportunities, for M-of-N
        self.first: list[bool] = []
        self.n_window = cfg.confirm_window
        self.hist: deque[bool] = deque(maxlen=cfg.confidence_window)
        #: sensor_id -> time (ns) of its last hit on this track
        self.seen: dict[str, int] = {}
        #: sensor_id -> misses counted since its last hit
        self.missed: dict[str, int] = {}
        self.sources: dict[str, Source] = {}
        #: sensor_id -> (classification, confidence, time ns) of its latest classified report
        self.class_reports: dict[str, tuple[int, float, int]] = {}
        self.identity = 0
        self.reported_class = 0

    def classification(self) -> tuple[int, float]:
        """The most confident sensor's latest classification (ties: the most recent)."""
        best: tuple[float, int, int] | None = None
        for cls, conf, t in self.class_reports.values():
            if best is None or (conf, t) > (best[0], best[1]):
                best = (conf, t, cls)
        return (0, 0.0) if best is None else (best[2], best[0])

    def record(self, hit: bool) -> None:
        self.hist.append(hit)
        if not self.confirmed and len(self.first) < self.n_window:
            self.first.append(hit)


class Tracker:
    """Multi-sensor tracker: NCV Kalman filters, chi-square gating, GNN, M-of-N initiation, time-out deletion.

    :param config: parameters; the defaults when ``None``.
    :param id_prefix: prefix of track ids; tracks are ``<prefix><n>``, n counting from 1.
    """

    def __init__(self, config: TrackerConfig | None = None, *, id_prefix: str = "T") -> None:
        self.config = config or TrackerConfig()
        self.id_prefix = id_prefix
        self.stats = TrackerStats()
        #: The local frame, fixed by the configuration or by the first valid measurement.
        self.frame: LocalFrame | None = None
        if self.config.reference_latitude_deg is not None and self.config.reference_longitude_deg is not None:
            self.frame = LocalFrame(
                self.config.reference_latitude_deg, self.config.reference_longitude_deg, self.config.reference_height_m
            )
        self._gate = self.config.gate_threshold
        self._gate_1d = self.config.gate_threshold_1d
        self._tracks: dict[str, _Track] = {}
        self._next_id = 1
        #: sensor_id -> recent intervals (ns) between consecutive hits of one track, and the revisit learned
        self._intervals: dict[str, deque[int]] = {}
        self._revisit: dict[str, int] = {}
        #: Newest measurement time processed (ns), None before the first.
        self._time: int | None = None
        #: Time of the last maintenance (ns): the tracker's "now".
        self._now: int | None = None

    # -- public API ---------------------------------------------------------------------------------------

    @property
    def time_ns(self) -> int | None:
        """The tracker's current time: the newest of the measurement times and ``now_ns`` it was given."""
        return self._now

    def process(self, measurements: Iterable[Measurement], now_ns: int | None = None) -> TrackerEvents:
        """Fuse ``measurements`` (any order, any sensors) and maintain the tracks up to ``now_ns``.

        Measurements are sorted by time and grouped into scans (same sensor, times within
        ``scan_window_s``); scans are processed in time order. ``now_ns`` (default: the newest
        measurement time) drives deletion when measurements stop; it never moves the tracker's
        time backwards.
        """
        cfg = self.config
        events = TrackerEvents()
        prepared = [p for p in (self._prepare(m) for m in measurements) if p is not None]
        prepared.sort(key=lambda m: m.t)
        tol = int(cfg.oosm_tolerance_s * _NS)
        for scan in _scans(prepared, int(cfg.scan_window_s * _NS)):
            group = scan
            if self._time is not None:
                group = [m for m in scan if m.t >= self._time - tol]
                self.stats.oosm_dropped += len(scan) - len(group)
                if not group:
                    continue
            t0 = group[0].t
            if self._now is None or t0 > self._now:
                self._maintain(t0, events)
            self._scan(group, events)
            newest = max(m.t for m in group)
            self._time = newest if self._time is None else max(self._time, newest)
        now = now_ns if now_ns is not None else self._time
        if now is not None:
            if self._time is not None:
                now = max(now, self._time)
            if self._now is None or now >= self._now:
                self._maintain(now, events)
        return events

    def tracks(self, *, include_tentative: bool = False) -> list[TrackState]:
        """Snapshots of the live tracks (confirmed only, unless ``include_tentative``), oldest first."""
        return [self._state(t) for t in self._tracks.values() if t.confirmed or include_tentative]

    def track(self, track_id: str) -> TrackState | None:
        """Snapshot of one live track, or ``None``."""
        t = self._tracks.get(track_id)
        return None if t is None else self._state(t)

    def reset(self) -> None:
        """Forget every track and learned revisit (not the counters, the frame or the id counter)."""
        self._tracks.clear()
        self._time = self._now = None
        self._intervals.clear()
        self._revisit.clear()

    # -- measurement preparation ------------------------------------------------------------------------------

    def _prepare(self, m: Measurement) -> _Meas | None:
        cfg = self.config
        self.stats.measurements += 1
        if not (
            math.isfinite(m.latitude_deg)
            and math.isfinite(m.longitude_deg)
            and math.isfinite(m.height_m)
            and -85.0 <= m.latitude_deg <= 85.0
            and -180.0 <= m.longitude_deg <= 180.0
        ):
            self.stats.invalid += 1
            return None
        if self.frame is None:
            self.frame = LocalFrame(m.latitude_deg, m.longitude_deg, cfg.reference_height_m)
        n, e, d = self.frame.to_ned(m.latitude_deg, m.longitude_deg, m.height_m)
        r, r_down = self._noise(m)
        floor = cfg.measurement_noise_floor_m**2
        r = r + floor * np.eye(2)
        r_down += floor
        largest_std = math.sqrt(_largest_eigenvalue(r[0, 0], r[0, 1], r[1, 1]))
        return _Meas(m, m.time_ns, np.array([n, e]), r, d, r_down, largest_std <= cfg.max_initiation_std_m)

    def _noise(self, m: Measurement) -> tuple[Array, float]:
        if m.covariance:
            c = unpack_upper_triangle(m.covariance)
            if c is not None and np.isfinite(c).all():
                r = c[:2, :2]
                if r[0, 0] > 0.0 and r[0, 0] * r[1, 1] - r[0, 1] ** 2 > 0.0 and c[2, 2] >= 0.0:
                    return r.copy(), float(c[2, 2])
            self.stats.bad_covariance += 1
        d = self.config.sensor_settings(m.sensor_id)
        return d.position_std_m**2 * np.eye(2), d.height_std_m**2

    # -- one scan -------------------------------------------------------------------------------------------------

    def _distances(self, tracks: Sequence[_Track], ms: Sequence[_Meas]) -> tuple[Array, BoolArray]:
        """Assignment costs and gate tests of every (track, measurement) pair, each predicted to the
        measurement's time (backwards for a late one).

        Horizontal: squared Mahalanobis distance ``d2`` of the innovation, cost ``d2 + ln det S``, gate
        ``d2 <=`` the chi-square quantile (2 dof). With ``height_gating``, the height innovation adds its own
        ``d2 + ln s`` to the cost and must pass its own gate (1 dof), so that an aircraft over a ship is
        not taken for it.
        """
        cfg = self.config
        q = cfg.process_noise_m2ps3
        x = np.array([t.x for t in tracks])  # (T, 4)
        p = np.array([t.p for t in tracks])  # (T, 4, 4)
        dt = (np.array([m.t for m in ms])[None, :] - np.array([t.t for t in tracks])[:, None]) / _NS  # (T, M)
        z = np.array([m.z for m in ms])  # (M, 2)
        r = np.array([m.r for m in ms])  # (M, 2, 2)
        zhat = x[:, None, :2] + dt[..., None] * x[:, None, 2:]  # (T, M, 2)
        ppv = p[:, :2, 2:]
        cross = ppv + np.swapaxes(ppv, 1, 2)
        adt = np.abs(dt)
        s = (
            p[:, None, :2, :2]
            + dt[..., None, None] * cross[:, None]
            + (dt**2)[..., None, None] * p[:, None, 2:, 2:]
            + (q * adt**3 / 3.0)[..., None, None] * np.eye(2)
            + r[None]
        )  # (T, M, 2, 2)
        nu = z[None] - zhat
        d2 = np.einsum("tmi,tmi->tm", nu, np.linalg.solve(s, nu[..., None])[..., 0])
        cost: Array = d2 + np.linalg.slogdet(s)[1]
        allowed: BoolArray = d2 <= self._gate
        if cfg.height_gating:
            s_v = (
                np.array([t.var_down for t in tracks])[:, None]
                + cfg.height_process_noise_m2ps * adt
                + np.array([m.r_down for m in ms])[None, :]
            )
            d2_v = (np.array([m.down for m in ms])[None, :] - np.array([t.down for t in tracks])[:, None]) ** 2 / s_v
            cost = cost + d2_v + np.log(s_v)
            allowed &= d2_v <= self._gate_1d
        return cost, allowed

    def _scan(self, group: list[_Meas], events: TrackerEvents) -> None:
        """Process one scan: assign, record misses, start tracks, confirm and reclassify."""
        confirmed = [t for t in self._tracks.values() if t.confirmed]
        hit, left = self._assign(group, confirmed)
        self._record_misses(group[0].src.sensor_id, group[-1].t, hit)
        self._initiate_from(left, confirmed, events)
        for tr in list(self._tracks.values()):
            if not tr.confirmed:
                if tr.id in hit:
                    self._judge_tentative(tr, events)
            elif tr.id not in events.confirmed:
                cls, _ = tr.classification()
                if cls != tr.reported_class:
                    tr.reported_class = cls
                    if tr.id not in events.reclassified:
                        events.reclassified.append(tr.id)

    def _assign(self, group: list[_Meas], confirmed: list[_Track]) -> tuple[set[str], list[_Meas]]:
        """GNN in two stages; confirmed tracks choose first, so that a tentative track never takes a
        confirmed one's measurement. Updates the assigned tracks; returns their ids and the measurements left.
        """
        tentative = [t for t in self._tracks.values() if not t.confirmed]
        left = list(group)
        hit: set[str] = set()
        for stage in (confirmed, tentative):
            if not stage or not left:
                continue
            cost, allowed = self._distances(stage, left)
            bonus = self.config.same_source_bonus
            if bonus:
                # A sensor that associates on its own keeps its track id on one object: prefer continuing it.
                sensor = left[0].src.sensor_id
                for row, tr in enumerate(stage):
                    src = tr.sources.get(sensor)
                    if src is not None:
                        for col, m in enumerate(left):
                            if m.src.track_id == src.track_id:
                                cost[row, col] -= bonus
            taken: set[int] = set()
            for row, col in gnn_assign(cost, allowed):
                self._update(stage[row], left[col])
                hit.add(stage[row].id)
                taken.add(col)
            left = [m for k, m in enumerate(left) if k not in taken]
        return hit, left

    def _record_misses(self, sensor: str, t_scan: int, hit: set[str]) -> None:
        """Count the misses of ``sensor``'s scan at ``t_scan`` on the tracks it did not hit.

        A track that the sensor has hit within ``source_timeout_s`` has missed one look for each revisit
        period of the sensor that has passed since, with half a period of slack: ``floor(age / P - 0.5)``
        misses in all (so detections of one rotation spread over time are not misses of each other). A
        sensor whose revisit is neither configured nor learned yet counts no misses.
        """
        period = self._period(sensor)
        if period is None:
            return
        timeout = self.config.source_timeout_s * _NS
        for tr in list(self._tracks.values()):
            last = tr.seen.get(sensor)
            if tr.id in hit or last is None or t_scan - last > timeout:
                continue
            due = math.floor((t_scan - last) / period - 0.5)
            counted = tr.missed.get(sensor, 0)
            if due > counted:
                tr.missed[sensor] = due
                for _ in range(due - counted):
                    tr.record(False)
                self._judge_tentative(tr)

    def _period(self, sensor: str) -> int | None:
        """The sensor's revisit period (ns): configured, learned, or ``None`` while unknown."""
        configured = self.config.sensor_settings(sensor).revisit_s
        return round(configured * _NS) if configured is not None else self._revisit.get(sensor)

    def _learn_revisit(self, sensor: str, interval_ns: int) -> None:
        """Learn a sensor's revisit period: the lower quartile of its recent hit intervals (a miss doubles one)."""
        if interval_ns <= self.config.scan_window_s * _NS:
            return
        recent = self._intervals.setdefault(sensor, deque(maxlen=64))
        recent.append(interval_ns)
        if len(recent) >= 3:
            self._revisit[sensor] = sorted(recent)[len(recent) // 4]

    def _initiate_from(self, left: list[_Meas], confirmed: list[_Track], events: TrackerEvents) -> None:
        """Start tentative tracks from the unassigned measurements that may start one."""
        if left and confirmed and not self.config.initiate_inside_gates:
            _, allowed = self._distances(confirmed, left)
            inside = [bool(v) for v in np.any(allowed, axis=0).tolist()]
        else:
            inside = [False] * len(left)
        for m, in_gate in zip(left, inside, strict=True):
            if not m.can_initiate:
                self.stats.not_initiated += 1
            elif in_gate:
                self.stats.in_gate_not_initiated += 1
            else:
                self._initiate(m, events)

    def _update(self, tr: _Track, m: _Meas) -> None:
        cfg = self.config
        dt = (m.t - tr.t) / _NS
        if dt >= 0.0:
            x, p = kf_predict(tr.x, tr.p, dt, cfg.process_noise_m2ps3)
            tr.x, tr.p = kf_update(x, p, m.z, m.r)
            var_down = tr.var_down + cfg.height_process_noise_m2ps * dt
            tr.t = m.t
            gain = var_down / (var_down + m.r_down)
            tr.down += gain * (m.down - tr.down)
            tr.var_down = (1.0 - gain) * var_down
        else:
            tr.x, tr.p = kf_update_retrodicted(tr.x, tr.p, m.z, m.r, dt_s=dt, q_m2ps3=cfg.process_noise_m2ps3)
            # Height is a random walk: the past height differs from the current one by the walk of the gap.
            s_down = tr.var_down + cfg.height_process_noise_m2ps * -dt + m.r_down
            gain = tr.var_down / s_down
            tr.down += gain * (m.down - tr.down)
            tr.var_down -= gain * gain * s_down
            self.stats.retrodicted += 1
        tr.update_count += 1
        self.stats.updates += 1
        s = m.src
        last = tr.seen.get(s.sensor_id)
        if last is not None and m.t > last:
            # Looks of this sensor skipped since its last hit are misses not counted yet.
            self._learn_revisit(s.sensor_id, m.t - last)
            period = self._period(s.sensor_id)
            if period is not None:
                for _ in range(round((m.t - last) / period) - 1 - tr.missed.get(s.sensor_id, 0)):
                    tr.record(False)
        tr.seen[s.sensor_id] = m.t if last is None else max(last, m.t)
        tr.missed[s.sensor_id] = 0
        tr.sources[s.sensor_id] = Source(s.sensor_id, s.track_id, m.t)
        if s.classification:
            tr.class_reports[s.sensor_id] = (s.classification, s.classification_confidence, m.t)
        if s.identity:
            tr.identity = s.identity
        tr.record(True)

    def _initiate(self, m: _Meas, events: TrackerEvents) -> None:
        tr = _Track(f"{self.id_prefix}{self._next_id}", m, self.config)
        self._next_id += 1
        self._tracks[tr.id] = tr
        self.stats.tracks_initiated += 1
        tr.update_count = 1
        s = m.src
        tr.seen[s.sensor_id] = m.t
        tr.sources[s.sensor_id] = Source(s.sensor_id, s.track_id, m.t)
        if s.classification:
            tr.class_reports[s.sensor_id] = (s.classification, s.classification_confidence, m.t)
        tr.identity = s.identity
        tr.record(True)
        self._judge_tentative(tr, events)

    def _judge_tentative(self, tr: _Track, events: TrackerEvents | None = None) -> None:
        """Confirm a tentative track with M hits in its first N opportunities; discard it when it cannot.

        Without ``events`` (after misses only) a track can only be discarded.
        """
        cfg = self.config
        if tr.confirmed:
            return
        hits = sum(tr.first)
        if hits >= cfg.confirm_hits and events is not None:
            tr.confirmed = True
            tr.reported_class = tr.classification()[0]
            self.stats.tracks_confirmed += 1
            events.confirmed.append(tr.id)
        elif len(tr.first) - hits > cfg.confirm_window - cfg.confirm_hits:
            del self._tracks[tr.id]
            self.stats.tentative_discarded += 1

    # -- maintenance ----------------------------------------------------------------------------------------------

    def _maintain(self, now: int, events: TrackerEvents) -> None:
        cfg = self.config
        self._now = now
        timeout = cfg.source_timeout_s * _NS
        for tr in list(self._tracks.values()):
            for sensor in [s for s, t in tr.seen.items() if now - t > timeout]:
                del tr.seen[sensor]
                tr.missed.pop(sensor, None)
                tr.sources.pop(sensor, None)
            age_s = (now - tr.t) / _NS
            if not tr.confirmed:
                # A slow sensor may miss N - M looks in a row and still confirm: wait that long, and a half.
                looks = cfg.confirm_window - cfg.confirm_hits + 1.5
                limit_ns = max([cfg.tentative_timeout_s * _NS] + [looks * (self._period(s) or 0) for s in tr.seen])
                if now - tr.t > limit_ns:
                    del self._tracks[tr.id]
                    self.stats.tentative_discarded += 1
                continue
            reason = ""
            if age_s > cfg.delete_after_s:
                reason = f"no update for {age_s:.1f} s"
            else:
                std = math.sqrt(_predicted_position_variance(tr.p, age_s, cfg.process_noise_m2ps3))
                if std > cfg.max_position_std_m:
                    reason = f"position uncertainty {std:.0f} m"
            if reason:
                events.dropped.append(DroppedTrack(self._state(tr), reason))
                del self._tracks[tr.id]
                self.stats.tracks_dropped += 1

    def _state(self, tr: _Track) -> TrackState:
        assert self.frame is not None  # a track exists only after a measurement fixed the frame
        lat, lon, h = self.frame.to_geo(float(tr.x[0]), float(tr.x[1]), tr.down)
        p: list[list[float]] = tr.p.tolist()
        (pnn, pne, pnvn, pnve), (_, pee, pevn, peve), (_, _, pvnvn, pvnve), (_, _, _, pveve) = p
        # Upper triangle of the 6x6 covariance of [n, e, d, vn, ve, vd], row by row; vd is not estimated.
        cov: tuple[float, ...] = (pnn, pne, 0.0, pnvn, pnve, 0.0)  # row n
        cov += (pee, 0.0, pevn, peve, 0.0)  # row e
        cov += (tr.var_down, 0.0, 0.0, 0.0)  # row d
        cov += (pvnvn, pvnve, 0.0, pveve, 0.0, 0.0)  # rows vn, ve, vd
        cls, cls_conf = tr.classification()
        now = self._now if self._now is not None else tr.t
        return TrackState(
            track_id=tr.id,
            confirmed=tr.confirmed,
            coasting=(now - tr.t) > self.config.coast_after_s * _NS,
            latitude_deg=lat,
            longitude_deg=lon,
            height_m=h,
            north_m=float(tr.x[0]),
            east_m=float(tr.x[1]),
            velocity_north_mps=float(tr.x[2]),
            velocity_east_mps=float(tr.x[3]),
            covariance=cov,
            classification=cls,
            classification_confidence=cls_conf,
            identity=tr.identity,
            confidence=sum(tr.hist) / len(tr.hist) if tr.hist else 0.0,
            sources=tuple(tr.sources.values()),
            first_update_ns=tr.first_ns,
            last_update_ns=tr.t,
            update_count=tr.update_count,
        )


def _scans(ms: list[_Meas], window_ns: int) -> list[list[_Meas]]:
    """Group time-sorted measurements into scans: one sensor, times within ``window_ns`` of the scan's first."""
    groups: list[list[_Meas]] = []
    open_: dict[str, list[_Meas]] = {}
    for m in ms:
        g = open_.get(m.src.sensor_id)
        if g is None or m.t - g[0].t > window_ns:
            g = []
            groups.append(g)
            open_[m.src.sensor_id] = g
        g.append(m)
    groups.sort(key=lambda g: g[0].t)  # already in order of first times; sort is stable
    return groups
