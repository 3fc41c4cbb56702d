"""One running VRRP instance: the state machine (``vrrpd.fsm``) wired to sockets, timers and the kernel.

* Timers: one ``loop.call_at`` handle on the loop's monotonic clock for the machine's deadline (the
  next advert as MASTER, the master-down timer as BACKUP), re-armed after every event.
* Received packets come from the shared socket (``vrrpd.sockets``) already parsed; ``vrrpd.packet.check``
  validates them in keepalived's order and a failure is counted under its reason.
* Actions: adverts are sent at once (synchronously, so they go out on time); VIP changes and
  gratuitous ARP/NA go through one ordered per-instance work queue (netlink is asynchronous and the
  GARPs must follow the addresses); a transition is logged keepalived's way, then reported to the
  engine (notify scripts, fifo, bus, sync group).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from supervisor.config.model.globals import GlobalDefs
from supervisor.config.model.vrrp import VrrpInstance
from vrrpd import packet as P
from vrrpd.config import VipSpec, vip_spec
from vrrpd.fsm import Action, Event, Heard, Machine, Params, State
from vrrpd.garp import Garp
from vrrpd.kernel import Routing
from vrrpd.sockets import TxSocket
from vrrpd.track import Track

log = logging.getLogger("pykeepalived.vrrp")
PRECISE_EARLY = 0.0015  # seconds a BACKUP's down timer wakes early, then sleeps the rest exactly


@dataclass(frozen=True)
class Settings:
    """Everything an instance needs from the configuration, resolved against global_defs."""

    name: str
    interface: str
    vrid: int
    version: int
    family: int
    priority: int
    interval_cs: int
    initial_master: bool
    preempt: bool
    preempt_delay: float
    vips: tuple[VipSpec, ...]
    evips: tuple[VipSpec, ...]
    auth_type: int
    auth_pass: bytes
    mcast_group: str
    unicast_src: str | None
    unicast_peers: tuple[tuple[str, int, int], ...]
    unicast_ttl: int
    check_unicast_src: bool
    checksum_as_v2: bool
    down_timer_adverts: int
    lower_prio_no_advert: bool
    higher_prio_send_advert: bool
    owner_ignore_adverts: bool
    garp_delay: float
    garp_repeat: int
    garp_refresh: float
    garp_refresh_repeat: int
    garp_lower_prio_repeat: int
    tracks: tuple[Track, ...]
    notify: dict[str, str]
    routes: tuple[Any, ...]
    rules: tuple[Any, ...]
    sync_group: str | None
    source: str = ""
    strict_addresses: bool = False
    notify_rx_lower: str | None = None  # notify_master_rx_lower_pri
    notify_priority_changes: bool = False
    smtp_alert: bool = False
    unicast_fault_no_peer: bool = False
    accept: bool = True  # accept mode; False: packets to the VIPs are dropped (not for an owner)
    vmac: str | None = None  # use_vmac: the macvlan's name (VIPs live there, adverts leave from it)
    vmac_xmit_base: bool = False

    @property
    def core(self) -> tuple[Any, ...]:
        """What cannot change under a running instance without restarting it."""
        return (self.interface, self.vrid, self.version, self.family, self.interval_cs, self.auth_type,
                self.auth_pass, self.mcast_group, self.unicast_src, self.unicast_peers, self.unicast_ttl,
                self.checksum_as_v2, self.initial_master, self.preempt, self.preempt_delay,
                self.down_timer_adverts, self.lower_prio_no_advert, self.higher_prio_send_advert,
                self.owner_ignore_adverts, self.routes, self.rules, self.vmac, self.vmac_xmit_base, self.accept)


def settings(inst: VrrpInstance, g: GlobalDefs, scripts: dict[str, tuple[int, bool]],
             files: dict[str, tuple[int, bool]] | None = None) -> Settings:
    """``scripts``/``files``: vrrp_script / track_file name -> (weight, reverse) defaults."""
    files = files or {}
    family = 6 if inst.family == "inet6" else 4
    version = 3 if family == 6 else (inst.version or g.vrrp_version)
    if version == 2:
        interval_cs = max(1, min(255, round(inst.advert_int))) * 100
    else:
        interval_cs = max(1, min(4095, round(inst.advert_int * 100)))
    iface = inst.interface or ""
    prio = inst.priority
    initial_master = inst.state == "MASTER" if inst.state else prio == 255
    strict = bool(inst.strict_mode if inst.strict_mode is not None else g.vrrp_strict)
    preempt = (not inst.nopreempt) or initial_master or prio == 255
    preempt_delay = 0.0 if (not preempt or strict or initial_master) else inst.preempt_delay

    vmac = (inst.vmac_name or f"vrrp.{inst.virtual_router_id}") if inst.use_vmac else None

    def vips(lst: list[Any]) -> tuple[VipSpec, ...]:
        out = []
        for v in lst:
            dev = v.dev or vmac or iface
            if dev:
                out.append(vip_spec(v.address, dev, v.scope, v.label, v.source))
        return tuple(out)

    tracks: list[Track] = []
    for t in inst.track_interfaces:
        tracks.append(Track("interface", t.name, t.weight or 0, t.reverse))
    for t in inst.track_scripts:
        w, rev = scripts.get(t.name, (0, False))
        tracks.append(Track("script", t.name, w if t.weight is None else t.weight, t.reverse or rev))
    for t in inst.track_files:
        w, rev = files.get(t.name, (1, False))
        tracks.append(Track("file", t.name, w if t.weight is None else t.weight, t.reverse or rev))
    auth_type = P.AUTH_TYPES.get(inst.auth_type, P.AUTH_NONE) if version == 2 else P.AUTH_NONE
    min_garp = g.vrrp_min_garp
    garp_repeat = 1 if min_garp else (inst.garp_master_repeat if inst.garp_master_repeat is not None
                                      else g.vrrp_garp_master_repeat)
    garp_delay = 0.0 if min_garp else (inst.garp_master_delay if inst.garp_master_delay is not None
                                       else g.vrrp_garp_master_delay)
    lpna = inst.lower_prio_no_advert if inst.lower_prio_no_advert is not None else g.vrrp_lower_prio_no_advert
    notify = {k: v for k in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify_deleted",
                             "notify")
              if (v := getattr(inst, k))}
    return Settings(
        name=inst.name, interface=iface, vrid=inst.virtual_router_id, version=version, family=family,
        priority=prio, interval_cs=interval_cs, initial_master=initial_master, preempt=preempt,
        preempt_delay=preempt_delay, vips=vips(inst.virtual_ipaddress),
        evips=vips(inst.virtual_ipaddress_excluded), auth_type=auth_type,
        auth_pass=P.pass_bytes(inst.auth_pass) if auth_type == P.AUTH_PASS else b"",
        mcast_group=inst.mcast_dst_ip or (g.vrrp_mcast_group6 if family == 6 else g.vrrp_mcast_group4),
        unicast_src=inst.unicast_src_ip or inst.mcast_src_ip,
        unicast_peers=tuple((p.address, p.min_ttl or 0, 255 if p.max_ttl is None else p.max_ttl)
                            for p in inst.unicast_peers),
        unicast_ttl=inst.unicast_ttl or 255,
        check_unicast_src=bool(inst.check_unicast_src if inst.check_unicast_src is not None
                               else g.vrrp_check_unicast_src),
        checksum_as_v2=bool(inst.v3_checksum_as_v2 if inst.v3_checksum_as_v2 is not None else g.v3_checksum_as_v2),
        # strict mode: the RFC's values, whatever the keywords say (the loader already reported them)
        down_timer_adverts=3 if strict else (inst.down_timer_adverts or g.vrrp_down_timer_adverts),
        lower_prio_no_advert=strict or bool(lpna),
        higher_prio_send_advert=not strict and bool(inst.higher_prio_send_advert
                                                    if inst.higher_prio_send_advert is not None
                                                    else g.vrrp_higher_prio_send_advert),
        owner_ignore_adverts=prio == 255 and (strict or bool(inst.owner_ignore_adverts
                                                             if inst.owner_ignore_adverts is not None
                                                             else g.vrrp_owner_ignore_adverts)),
        garp_delay=garp_delay, garp_repeat=garp_repeat,
        garp_refresh=inst.garp_master_refresh if inst.garp_master_refresh is not None else g.vrrp_garp_master_refresh,
        garp_refresh_repeat=(inst.garp_master_refresh_repeat if inst.garp_master_refresh_repeat is not None
                             else g.vrrp_garp_master_refresh_repeat),
        garp_lower_prio_repeat=0 if strict else (
            inst.garp_lower_prio_repeat if inst.garp_lower_prio_repeat is not None
            else (g.vrrp_garp_lower_prio_repeat if g.vrrp_garp_lower_prio_repeat is not None else garp_repeat)),
        tracks=tuple(tracks), notify=notify, sync_group=inst.sync_group, source=inst.source,
        routes=tuple(replace(r, dev=r.dev or (iface if r.via is None and not r.route_type else r.dev))
                     for r in inst.virtual_routes),
        rules=tuple(inst.virtual_rules), vmac=vmac, vmac_xmit_base=inst.vmac_xmit_base and not strict,
        strict_addresses=strict and not (inst.skip_check_adv_addr if inst.skip_check_adv_addr is not None
                                         else g.vrrp_skip_check_adv_addr),
        notify_rx_lower=inst.notify_master_rx_lower_pri,
        unicast_fault_no_peer=inst.unicast_fault_no_peer,
        # RFC 3768 has no accept mode: strict v2 backups never accept (keepalived resets it)
        accept=prio == 255 or (bool(inst.accept if inst.accept is not None else not strict)
                               and not (strict and version == 2)),
        smtp_alert=bool(next((x for x in (inst.smtp_alert, g.smtp_alert_vrrp, g.smtp_alert) if x is not None), False)),
        notify_priority_changes=bool(inst.notify_priority_changes if inst.notify_priority_changes is not None
                                     else g.vrrp_notify_priority_changes))


Hooks = Callable[["Instance", Action], None]


@dataclass
class Instance:
    s: Settings
    kernel: Any  # vrrpd.kernel.Kernel (Any: tests give a fake)
    on_transition: Hooks
    machine: Machine = field(init=False)
    counters: Counter[str] = field(default_factory=Counter)
    tx: TxSocket | None = None
    garp: Garp | None = None
    src: str = ""
    ifindex: int = 0
    fault_reasons: list[str] = field(default_factory=list)
    group_fault: bool = False
    since: float = field(default_factory=time.time)
    last_advert: float = 0.0  # monotonic time of our last advert sent
    higher_heard: bool = False  # a higher-priority advert since we started (resume safety)
    deleted: bool = False  # removed by a reload (notify_deleted)
    on_rx_lower: Callable[[Instance, str, int], None] | None = None
    accept_filter: Any = None  # vrrpd.accept.AcceptFilter, shared, for no_accept instances

    def __post_init__(self) -> None:
        self.machine = Machine(self._params())
        self.loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._work: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._worker = self.loop.create_task(self._run_work())
        self._garp_handles: list[asyncio.TimerHandle] = []
        self._msgs: dict[int, bytes] = {}
        self.held_vips: set[tuple[str, str, int]] = set()
        self.rxctx = self._rxctx()
        self.routing = Routing(self.kernel)

    # -- configuration -----------------------------------------------------------------------------

    def _params(self, src: str = "") -> Params:
        s = self.s
        return Params(version=s.version, priority=s.priority, interval_cs=s.interval_cs, own_address=src,
                      initial_master=s.initial_master, preempt=s.preempt, preempt_delay=s.preempt_delay,
                      down_timer_adverts=s.down_timer_adverts, lower_prio_no_advert=s.lower_prio_no_advert,
                      higher_prio_send_advert=s.higher_prio_send_advert)

    def _rxctx(self) -> P.RxContext:
        s = self.s
        return P.RxContext(
            version=s.version, family=s.family, vrid=s.vrid, interval_cs=s.interval_cs,
            vips=frozenset(v.address for v in s.vips), auth_type=s.auth_type, auth_pass=s.auth_pass,
            unicast=bool(s.unicast_peers), unicast_peers={a: (lo, hi) for a, lo, hi in s.unicast_peers},
            check_unicast_src=s.check_unicast_src, checksum_as_v2=s.checksum_as_v2,
            owner_ignore_adverts=s.owner_ignore_adverts, own_addresses=frozenset({self.src} if self.src else ()),
            strict_addresses=s.strict_addresses)

    def bind(self, src: str, ifindex: int, tx: TxSocket, garp: Garp) -> None:
        self.src, self.ifindex, self.tx, self.garp = src, ifindex, tx, garp
        m = self.machine
        self.machine = Machine(self._params(src), state=m.state, effective_priority=m.effective_priority)
        self.rxctx = self._rxctx()
        self._msgs.clear()

    def update(self, s: Settings) -> tuple[list[VipSpec], list[VipSpec]]:
        """Reload with the same core settings: returns (VIPs to add, VIPs to remove) if MASTER."""
        old = {v.key: v for v in self.s.vips + self.s.evips}
        new = {v.key: v for v in s.vips + s.evips}
        self.s = s
        m = self.machine
        self.machine = Machine(self._params(self.src), state=m.state, effective_priority=m.effective_priority,
                               master_interval_cs=m.master_interval_cs, deadline=m.deadline,
                               preempt_time=m.preempt_time, master_address=m.master_address,
                               master_priority=m.master_priority)
        self.rxctx = self._rxctx()
        self._msgs.clear()
        if m.state != State.MASTER:
            return [], []
        return [v for k, v in new.items() if k not in old], [v for k, v in old.items() if k not in new]

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def dests(self) -> list[str]:
        return [a for a, _, _ in self.s.unicast_peers] or [self.s.mcast_group]

    # -- events ------------------------------------------------------------------------------------

    def event(self, ev: Event, arg: object = None) -> None:
        now = self.loop.time()
        actions = self.machine.handle(ev, now, arg)
        for a in actions:
            self._do(a)
        self._arm()

    def _arm(self) -> None:
        # Lazy re-arming: a BACKUP pushes its deadline forward on every advert; instead of cancelling
        # and re-scheduling a handle each time, the armed handle fires at the old time and re-arms.
        # A BACKUP's handle is set PRECISE_EARLY ahead: the loop's poll timeout is rounded up to whole
        # milliseconds, so the last stretch before taking over is slept exactly (at most once per
        # takeover, never per advert).
        d = self.machine.deadline
        if d is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        when = d - PRECISE_EARLY if self.machine.state == State.BACKUP else d
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        d = self.machine.deadline
        if d is None:
            return
        left = d - self.loop.time()
        if self.machine.state == State.BACKUP and 0 < left <= PRECISE_EARLY + 1e-6:
            time.sleep(left)
        elif left > 1e-6:
            self._arm()
            return
        self.event(Event.TIMER)

    def on_packet(self, rx: P.Received) -> None:
        try:
            c = P.check(rx, self.rxctx)
        except P.Drop as e:
            self.counters[e.reason] += 1
            if self.counters[e.reason] in (1, 100, 10000):
                log.info("(%s) dropping advert from %s: %s", self.s.name, rx.src, e)
            return
        self.counters["adverts_received"] += 1
        if not c.addr_list_ok:
            self.counters[P.R_ADDR_LIST] += 1
        adv = c.advert
        if adv.priority == 0:
            self.counters["pri_zero_received"] += 1
        if adv.priority > self.machine.effective_priority:
            self.higher_heard = True
        if self.machine.state == State.MASTER and adv.priority and (
                adv.priority < self.machine.effective_priority):
            log.info("(%s) Received advert from %s with lower priority %d, ours %d, forcing new election",
                     self.s.name, c.src, adv.priority, self.machine.effective_priority)
            if self.s.garp_lower_prio_repeat:
                self._queue_garp(self.s.garp_lower_prio_repeat)
            if self.on_rx_lower is not None:
                self.on_rx_lower(self, c.src, adv.priority)
        self.event(Event.ADVERT, Heard(c.src, adv.priority, adv.interval_cs))

    # -- actions -----------------------------------------------------------------------------------

    def _do(self, a: Action) -> None:
        if a.kind == "send":
            self.send(a.priority)
        elif a.kind == "vips_add":
            self._cancel_garps()
            self._work.put_nowait(self._add_vips)
        elif a.kind == "vips_del":
            self._cancel_garps()
            self._work.put_nowait(self._del_vips)
        elif a.kind == "garp":
            self._schedule_garps()
        elif a.kind == "log":
            log.info("(%s) %s", self.s.name, a.reason)
        elif a.kind == "transition":
            self.since = time.time()
            if a.new == State.MASTER:
                self.counters["became_master"] += 1
            elif a.old == State.MASTER:
                self.counters["release_master"] += 1
            log.info("(%s) Entering %s STATE%s", self.s.name, a.new.name if a.new != State.INIT else "STOP",
                     f" ({a.reason})" if a.reason else "")
            self.on_transition(self, a)

    def message(self, priority: int, dst: str) -> bytes:
        s = self.s
        key = priority
        base = self._msgs.get(key)
        if base is None:
            base = P.build(s.version, s.family, s.vrid, priority, s.interval_cs, [v.address for v in s.vips],
                           src=self.src, dst=s.mcast_group if s.version == 3 else "", auth_type=s.auth_type,
                           auth_pass=s.auth_pass, checksum_as_v2=s.checksum_as_v2)
            self._msgs[key] = base
        if s.version == 3 and dst != s.mcast_group:
            return P.rechecksum_v3(base, s.family, self.src, dst, s.checksum_as_v2)
        return base

    def send(self, priority: int) -> None:
        if self.tx is None:
            return
        for dst in self.dests:
            if self.tx.send(self.message(priority, dst), dst):
                self.counters["adverts_sent"] += 1
        if priority == 0:
            self.counters["pri_zero_sent"] += 1
            log.info("(%s) sent 0 priority", self.s.name)
        self.last_advert = self.loop.time()

    async def _run_work(self) -> None:
        while True:
            job = await self._work.get()
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed netlink call must not stop the instance
                log.exception("(%s) error changing the kernel", self.s.name)

    async def _add_vips(self) -> None:
        if not self.s.accept and self.accept_filter is not None:
            self.accept_filter.block([v.address for v in self.s.vips + self.s.evips])
        for v in self.s.vips + self.s.evips:
            try:
                await self.kernel.add(v)
                self.held_vips.add(v.key)
                self.counters["vip_add"] += 1
            except Exception as e:
                log.error("%s(%s) %s", f"{v.source}: " if v.source else "", self.s.name, e)
        # then routes, then rules (keepalived's order)
        for what, items in (("route", self.s.routes), ("rule", self.s.rules)):
            for item in items:
                try:
                    await getattr(self.routing, what)("add", item)
                except Exception as e:
                    log.error("%s(%s) %s", f"{item.source}: " if item.source else "", self.s.name, e)

    async def _del_vips(self) -> None:
        if self.held_vips:
            log.info("(%s) removing VIPs.", self.s.name)  # keepalived's wording
            for what, items in (("rule", self.s.rules), ("route", self.s.routes)):
                for item in items:
                    try:
                        await getattr(self.routing, what)("del", item)
                    except Exception as e:
                        log.error("(%s) %s", self.s.name, e)
        for v in self.s.vips + self.s.evips:
            try:
                await self.kernel.delete(v)
                if v.key in self.held_vips:
                    self.counters["vip_del"] += 1
                self.held_vips.discard(v.key)
            except Exception as e:
                log.error("(%s) %s", self.s.name, e)
        if not self.s.accept and self.accept_filter is not None:
            self.accept_filter.unblock([v.address for v in self.s.vips + self.s.evips])

    async def change_vips(self, add: list[VipSpec], remove: list[VipSpec]) -> None:
        if not self.s.accept and self.accept_filter is not None:
            self.accept_filter.unblock([v.address for v in remove])
            self.accept_filter.block([v.address for v in add])
        for v in remove:
            await self.kernel.delete(v)
            self.held_vips.discard(v.key)
        for v in add:
            await self.kernel.add(v)
            self.held_vips.add(v.key)
        if add:
            self._queue_garp(self.s.garp_repeat, [v for v in add])

    def _queue_garp(self, repeat: int, vips: list[VipSpec] | None = None) -> None:
        targets = [(v.family, v.address) for v in (vips if vips is not None else self.s.vips + self.s.evips)
                   if v.dev in (self.s.interface, self.s.vmac)]

        async def job() -> None:
            if self.garp is not None and targets:
                for _ in range(max(0, repeat)):
                    self.garp.send(targets, self.src if self.s.family == 6 else None)
        self._work.put_nowait(job)

    def _schedule_garps(self) -> None:
        s = self.s
        self._queue_garp(s.garp_repeat)
        if s.garp_delay > 0:
            self._garp_handles.append(self.loop.call_later(s.garp_delay, self._queue_garp, s.garp_repeat))
        if s.garp_refresh > 0:
            self._garp_handles.append(self.loop.call_later(s.garp_delay + s.garp_refresh, self._refresh))

    def _refresh(self) -> None:
        if self.state == State.MASTER:
            self._queue_garp(self.s.garp_refresh_repeat)
            self._garp_handles.append(self.loop.call_later(self.s.garp_refresh, self._refresh))

    def _cancel_garps(self) -> None:
        for h in self._garp_handles:
            h.cancel()
        self._garp_handles.clear()

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued kernel work is done."""
        done = asyncio.Event()

        async def mark() -> None:
            done.set()
        self._work.put_nowait(mark)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            log.warning("(%s) kernel work still pending after %.0f s", self.s.name, timeout)

    async def close(self) -> None:
        self._cancel_garps()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)

    # -- views -------------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        s, m = self.s, self.machine
        return {"state": m.state.name if m.state != State.INIT else "INIT", "priority": m.effective_priority,
                "base_priority": s.priority, "interface": s.interface, "vrid": s.vrid, "version": s.version,
                "family": "inet6" if s.family == 6 else "inet",
                "vips": [f"{v.address}/{v.prefixlen}" for v in s.vips],
                "evips": [f"{v.address}/{v.prefixlen}" for v in s.evips],
                "master": m.master_address if m.state == State.BACKUP else (self.src if m.state == State.MASTER
                                                                            else None),
                "advert_int": s.interval_cs / 100.0, "since": self.since,
                "faults": list(self.fault_reasons) + (["sync group"] if self.group_fault else []),
                "sync_group": s.sync_group}
