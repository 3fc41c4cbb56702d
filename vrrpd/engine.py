"""The VRRP engine: every instance of a configuration generation, their sockets, trackers and notifications.

The role (``vrrpd.daemon``) owns the lifecycle; this module does the work:

* start: open the shared sockets per (interface, family) once the interface exists and has its source
  address (IPv6: a usable link-local), build instances, start trackers, then start every instance with
  keepalived's initial-state rules, or resume it as MASTER when that is safe (below);
* reload (``apply``): an instance whose core settings did not change keeps its state (no re-election);
  VIPs that went are removed and new ones added if it is MASTER; other instances are restarted;
* stop: a MASTER sends priority 0 and removes its VIPs (not with -V), notify_stop runs;
* trackers: track_interface (link events) and track_script move instances to FAULT (weight 0) or change
  their priority; sync groups move their members together;
* bus: ``vrrp.instance.<name>`` (state) on every state or priority change, ``vrrp.stats`` (counters)
  every few seconds, ``vrrp.resume`` (each MASTER's last advert time on the monotonic clock) twice a
  second.

Safe resume after a respawn (the supervisor keeps the bus cache, so the new process sees what the
killed one published): an instance resumes as MASTER, keeping its VIPs, only if it was MASTER in the
same configuration generation with the same priority, its last advert (as last published, so the real
one was later) is less than its master_down_interval old on the monotonic clock, and no advert with a
higher priority arrived on its socket since the new process opened it. Otherwise it starts as BACKUP,
as keepalived does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from supervisor.bus import Envelope
from supervisor.config.model.config import Config
from vrrpd import packet as P
from vrrpd.accept import AcceptFilter
from vrrpd.config import vip_spec
from vrrpd.fsm import Action, Event, State
from vrrpd.garp import Garp
from vrrpd.instance import Instance, Settings, settings
from vrrpd.kernel import Kernel, Routing, delete_link, ensure_vmac, set_sysctls, vmac_address
from vrrpd.notify import Fifo, Runner, fifo_line, shell_warning
from vrrpd.smtp import Mailer
from vrrpd.sockets import RxSocket, TxSocket
from vrrpd.track import FileTracker, LinkMonitor, ScriptTracker, effect

log = logging.getLogger("pykeepalived.vrrp")

Publish = Callable[[str, str, "dict[str, Any] | None"], None]
STATS_EVERY = 5.0
RESUME_EVERY = 0.5
ADDRESS_RETRY = 0.2
SETTLE_MAX = 5.0


def _uptime() -> float:
    try:
        with open("/proc/uptime", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 1e9


class Engine:
    def __init__(self, kernel: Kernel, publish: Publish) -> None:
        self.kernel = kernel
        self.publish = publish
        self.instances: dict[str, Instance] = {}
        self.rx: dict[tuple[str, int], RxSocket] = {}
        self.tx: dict[tuple[str, int, str], TxSocket] = {}
        self.garps: dict[str, Garp] = {}
        self.by_vrid: dict[tuple[str, int], dict[int, list[Instance]]] = {}
        self.socket_counters: Counter[str] = Counter()
        self.links = LinkMonitor()
        self.scripts: dict[str, ScriptTracker] = {}
        self.files: dict[str, FileTracker] = {}
        self.vmacs: set[str] = set()
        self.base_sysctls: dict[str, dict[str, str]] = {}
        self.groups: dict[str, list[str]] = {}
        self.group_notify: dict[str, dict[str, str]] = {}
        self.runner = Runner()
        self.mailer: Mailer | None = None
        self.accept_filter = AcceptFilter()
        self.fifos: list[Fifo] = []
        self.gen = 0
        self.cached: dict[str, Envelope] = {}
        self.pending: set[str] = set()  # instances waiting for their interface/address
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        self._bringing = self._bring_again = self._retry_armed = False
        self.start_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, config: Config, gen: int, cached: dict[str, Envelope]) -> None:
        self.loop = asyncio.get_running_loop()
        self.gen, self.cached = gen, cached
        await self.links.start()
        self.links.listeners.append(self._link_changed)
        self._configure_globals(config)
        await self._static(config)
        g = config.global_defs
        delay = max(g.vrrp_startup_delay, g.vrrp_delay_after_boot - _uptime())
        if delay > 0:
            log.info("Delaying startup for %g seconds", round(delay, 3))
            self.start_at = self.loop.time() + delay
        await self._converge(config, first=True)
        self._tasks.append(self.loop.create_task(self._periodic()))
        await self._settle()

    async def _static(self, config: Config) -> None:
        """static_ipaddress / static_routes / static_rules: set once at start, never moved or removed."""
        routing = Routing(self.kernel)
        for a in config.static_ipaddress:
            if not a.dev:
                continue
            try:
                await self.kernel.add(vip_spec(a.address, a.dev, a.scope, a.label, a.source))
            except Exception as e:
                log.error("%s%s", f"{a.source}: " if a.source else "", e)
        for what, items in (("route", config.static_routes), ("rule", config.static_rules)):
            for item in items:
                try:
                    await getattr(routing, what)("add", item)
                except Exception as e:
                    log.error("%s%s", f"{item.source}: " if item.source else "", e)

    async def _settle(self) -> None:
        """Return once every instance configured MASTER has become MASTER (VIPs in place) or found a
        master, so that "ready" (the supervisor's "Startup complete", systemd's READY) means the node
        holds what it is meant to hold. Bounded: one advert interval plus the skew, at most 5 s."""
        want = [i for i in self.instances.values() if i.s.initial_master]
        if not want:
            return
        limit = self.loop.time() + min(SETTLE_MAX, max(i.s.interval_cs / 100.0 for i in want) + 1.0)

        def settled(i: Instance) -> bool:
            return i.state != State.BACKUP or i.machine.master_address is not None

        while self.loop.time() < limit and not all(settled(i) for i in want):
            await asyncio.sleep(0.01)
        for i in want:
            await i.drain(max(0.1, limit - self.loop.time()))

    def _configure_globals(self, config: Config) -> None:
        g = config.global_defs
        fresh = Runner(g.script_user, g.enable_script_security)
        self.runner.ids, self.runner.security = fresh.ids, fresh.security
        paths = [p for p in (g.notify_fifo, g.vrrp_notify_fifo) if p]
        if [f.path for f in self.fifos] != paths:
            self.fifos = [Fifo(p) for p in paths]
        self.mailer = None
        if g.smtp_server and g.notification_email:
            self.mailer = Mailer(g.smtp_server, g.smtp_port, g.notification_email_from or "",
                                 list(g.notification_email), g.router_id or "", g.smtp_helo_name or "",
                                 g.smtp_connect_timeout)
        self.groups = {sg.name: list(sg.group) for sg in config.vrrp_sync_groups}
        self.group_notify = {sg.name: {k: v for k in ("notify_master", "notify_backup", "notify_fault",
                                                      "notify_stop", "notify") if (v := getattr(sg, k))}
                             for sg in config.vrrp_sync_groups}
        for cmds in [*self.group_notify.values()]:
            for c in cmds.values():
                if (w := shell_warning(c)) is not None:
                    log.warning("%s", w)

    async def apply(self, config: Config, gen: int) -> None:
        self.gen = gen
        self._configure_globals(config)
        await self._converge(config, first=False)

    async def _converge(self, config: Config, first: bool) -> None:
        g = config.global_defs
        script_defaults = {s.name: (s.weight, s.weight_reverse) for s in config.vrrp_scripts}
        file_defaults = {f.name: (f.weight, f.weight_reverse) for f in config.track_files}
        want: dict[str, Settings] = {}
        for model in config.vrrp_instances:
            if not model.interface:
                continue
            want[model.name] = settings(model, g, script_defaults, file_defaults)
            for c in want[model.name].notify.values():
                if (w := shell_warning(c)) is not None:
                    log.warning("(%s) %s", model.name, w)
        # scripts: (re)create runners for what is tracked
        used = {t.name for s in want.values() for t in s.tracks if t.kind == "script"}
        for sc in config.vrrp_scripts:
            if sc.name not in used:
                continue
            old = self.scripts.get(sc.name)
            if old is not None and (old.cmdline, old.interval, old.timeout, old.rise, old.fall, old.user) == (
                    sc.script, sc.interval, sc.timeout, sc.rise, sc.fall, sc.user):
                continue
            if old is not None:
                await old.stop()
            if (w := shell_warning(sc.script)) is not None:
                log.warning("vrrp_script %s: %s", sc.name, w)
            tr = ScriptTracker(sc.name, sc.script, sc.interval, sc.timeout, sc.rise, sc.fall, sc.init_fail,
                               user=sc.user)
            tr.listeners.append(self._script_changed)
            self.scripts[sc.name] = tr
            tr.start(self.runner)
        for name in [n for n in self.scripts if n not in used]:
            await self.scripts.pop(name).stop()
        used_files = {t.name for s in want.values() for t in s.tracks if t.kind == "file"}
        for tf in config.track_files:
            if tf.name not in used_files:
                continue
            old_f = self.files.get(tf.name)
            if old_f is not None and old_f.path == tf.file:
                continue
            if old_f is not None:
                await old_f.stop()
            ft = FileTracker(tf.name, tf.file, tf.init_file, tf.init_file_overwrite)
            ft.listeners.append(self._file_changed)
            self.files[tf.name] = ft
            ft.start()
        for name in [n for n in self.files if n not in used_files]:
            await self.files.pop(name).stop()
        # instances that went, or changed beyond what can be updated in place
        for name in list(self.instances):
            inst = self.instances[name]
            new = want.get(name)
            if new is None or new.core != inst.s.core:
                log.info("(%s) %s", name, "removed from the configuration" if new is None else "changed: restarting")
                inst.deleted = new is None
                await self._stop_instance(inst, release=True)
                if new is None:
                    self.publish(f"vrrp.instance.{name}", "delete", None)
        for name, s in want.items():
            cur = self.instances.get(name)
            if cur is not None:
                add, remove = cur.update(s)
                if add or remove:
                    await cur.change_vips(add, remove)
                self._reevaluate(cur)
                self._publish(cur)
                continue
            self.instances[name] = Instance(s, self.kernel, self._transition, on_rx_lower=self._rx_lower,
                                            accept_filter=self.accept_filter)
            self.pending.add(name)
        await self._bring_up(first)

    async def _bring_up(self, first: bool) -> None:
        """Start the instances whose interface and source address are there; retry the others.

        As keepalived: a missing interface, or one without an IPv4 address, puts the instance in FAULT
        until it is there; an IPv6 instance waits (in INIT) for a usable link-local address.
        """
        if self._bringing:
            self._bring_again = True
            return
        wait = self.start_at - self.loop.time()
        if wait > 0:
            # vrrp_startup_delay / vrrp_delay_after_boot: instances stay in INIT until then; the
            # timers then count from the delayed start, as keepalived's do
            if not self._retry_armed:
                self._retry_armed = True

                def later() -> None:
                    self._retry_armed = False
                    if not self.stopping:
                        self.loop.create_task(self._bring_up(first))
                self.loop.call_later(wait, later)
            return
        self._bringing = True
        try:
            await self._bring_up_once(first)
        finally:
            self._bringing = False
        if self._bring_again and not self.stopping:
            self._bring_again = False
            self.loop.create_task(self._bring_up(False))
        elif self.pending and not self.stopping and not self._retry_armed:
            self._retry_armed = True

            def again() -> None:
                self._retry_armed = False
                if not self.stopping:
                    self.loop.create_task(self._bring_up(False))
            self.loop.call_later(ADDRESS_RETRY, again)

    def _no_source(self, inst: Instance, why: str) -> None:
        if inst.fault_reasons != [why] or inst.state == State.INIT:
            log.warning("(%s) entering FAULT state (%s)", inst.s.name, why)
            inst.fault_reasons = [why]
            if inst.state != State.FAULT:
                inst.event(Event.FAULT, why)
            self._publish(inst)

    async def _bring_up_once(self, first: bool) -> None:
        ready: list[Instance] = []
        for name in sorted(self.pending):
            inst = self.instances.get(name)
            if inst is None:
                self.pending.discard(name)
                continue
            s = inst.s
            try:
                info = await self.kernel.link_info(s.interface)
            except Exception as e:  # netlink trouble: try again later
                log.warning("(%s) cannot read interface %s: %s", name, s.interface, e)
                continue
            if info is None:
                self._no_source(inst, f"interface {s.interface} not found")
                continue
            ifindex, mac, _up = info
            src = s.unicast_src if s.unicast_src and s.family == 4 else None
            if src is None:
                src = await self.kernel.source_address(ifindex, s.family)
            if src is None:
                if s.family == 4:
                    self._no_source(inst, "no IPv4 address for interface")
                continue  # IPv6: the link-local address is still tentative (DAD)
            key = (s.interface, s.family)
            tx_if, tx_index, garp_if, garp_mac = s.interface, ifindex, s.interface, mac
            if s.vmac:
                try:
                    vindex = await ensure_vmac(self.kernel, s.vmac, s.interface, vmac_address(s.vrid, s.family),
                                               src if s.family == 6 else None)
                except Exception as e:
                    self._no_source(inst, f"cannot set up VMAC {s.vmac}: {e}")
                    continue
                self.vmacs.add(s.vmac)
                if s.family == 4 and s.interface not in self.base_sysctls:
                    # the base must not answer ARP for the VIPs its VMACs hold (keepalived does the same)
                    self.base_sysctls[s.interface] = set_sysctls(s.interface, {"arp_ignore": "1", "arp_filter": "1"})
                garp_if, garp_mac = s.vmac, vmac_address(s.vrid, s.family)
                if not s.vmac_xmit_base:
                    tx_if, tx_index = s.vmac, vindex
            try:
                rx = self.rx.get(key)
                if rx is None:
                    rx = RxSocket(s.interface, ifindex, s.family, self._dispatch_for(key), self.socket_counters)
                    rx.start(self.loop)
                    self.rx[key] = rx
                if not s.unicast_peers:
                    rx.join(s.mcast_group)
                tkey = (tx_if, s.family, src)
                tx = self.tx.get(tkey)
                if tx is None:
                    tx = TxSocket(tx_if, tx_index, s.family, src, s.unicast_ttl)
                    self.tx[tkey] = tx
            except PermissionError:
                raise
            except OSError as e:
                self._no_source(inst, f"cannot open VRRP socket on {s.interface}: {e.strerror}")
                continue
            garp = self.garps.get(garp_if)
            if garp is None:
                index_g = ifindex if garp_if == s.interface else (await self.kernel.ifindex(garp_if) or ifindex)
                garp = self.garps[garp_if] = Garp(garp_if, index_g, garp_mac)
            inst.bind(src, ifindex, tx, garp)
            self.by_vrid.setdefault(key, {}).setdefault(s.vrid, []).append(inst)
            self.pending.discard(name)
            ready.append(inst)
        if ready:
            # let packets already queued on the new sockets arrive (resume safety: a higher priority)
            await asyncio.sleep(0)
            for rx in self.rx.values():
                rx._readable()
        for inst in ready:
            if inst.state == State.FAULT:
                inst.fault_reasons = []
                self._reevaluate(inst)  # leaves FAULT unless a tracker holds it there
                self._publish(inst)
            else:
                self._start_instance(inst, first)

    def _dispatch_for(self, key: tuple[str, int]) -> Callable[[P.Received], None]:
        def dispatch(rx: P.Received) -> None:
            insts = self.by_vrid.get(key, {}).get(rx.vrid)
            if not insts:
                self.socket_counters[P.R_VRID] += 1
                return
            for inst in insts:
                inst.on_packet(rx)
        return dispatch

    def _start_instance(self, inst: Instance, first: bool) -> None:
        self._reevaluate(inst, start=True)
        if inst.fault_reasons or inst.group_fault:
            inst.event(Event.FAULT, ", ".join(inst.fault_reasons) or f"sync group {inst.s.sync_group}")
            self._publish(inst)
            return
        if first and self._may_resume(inst):
            inst.event(Event.RESUME)
        else:
            inst.event(Event.START)
        self._publish(inst)

    def _may_resume(self, inst: Instance) -> bool:
        s = inst.s
        env = self.cached.get(f"vrrp.instance.{s.name}")
        res = self.cached.get("vrrp.resume")
        if env is None or res is None or env.data.get("state") != "MASTER":
            return False
        last = (res.data.get("instances") or {}).get(s.name) or {}
        why = None
        if env.gen != self.gen or res.gen != self.gen:
            why = "configuration generation changed"
        elif env.data.get("priority") != inst.machine.effective_priority:
            why = "priority changed"
        elif inst.higher_heard:
            why = "a higher priority advert was heard"
        else:
            try:
                age = time.monotonic() - float(last.get("last_advert", 0.0))
            except (TypeError, ValueError):
                age = float("inf")
            if not 0 <= age < inst.machine.master_down_interval():
                why = f"last advert {age:.2f}s ago"
        if why is not None:
            log.info("(%s) was MASTER before the restart, not resuming: %s", s.name, why)
            return False
        log.info("(%s) resuming as MASTER (last advert %.0f ms ago)", s.name, age * 1000)
        return True

    async def _stop_instance(self, inst: Instance, release: bool) -> None:
        s = inst.s
        inst.event(Event.STOP, release)
        await inst.drain()
        await inst.close()
        self.instances.pop(s.name, None)
        self.pending.discard(s.name)
        key = (s.interface, s.family)
        lst = self.by_vrid.get(key, {}).get(s.vrid, [])
        if inst in lst:
            lst.remove(inst)

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        self.stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for tr in self.scripts.values():
            await tr.stop()
        for tf in self.files.values():
            await tf.stop()
        done = 0
        insts = list(self.instances.values())
        for inst in insts:  # priority 0 from every master first, then the slower kernel work
            inst.event(Event.STOP, release)
        for inst in insts:
            await inst.drain()
            await inst.close()
            done += 1
            progress(done)
            self.publish(f"vrrp.instance.{inst.s.name}", "delete", None)
        self.instances.clear()
        self.publish("vrrp.resume", "delete", None)
        await self.runner.close()
        await self.links.stop()
        for rx in self.rx.values():
            rx.close(self.loop)
        for tx in self.tx.values():
            tx.close()
        for g in self.garps.values():
            g.close()
        if release:
            self.accept_filter.close()
        if release:
            for name in sorted(self.vmacs):  # keepalived removes the VMACs it made
                try:
                    await delete_link(self.kernel, name)
                except Exception as e:
                    log.warning("%s", e)
            for ifname, old in self.base_sysctls.items():
                set_sysctls(ifname, old)

    # -- trackers ----------------------------------------------------------------------------------

    def _track_status(self, inst: Instance) -> list[tuple[Any, bool | int]]:
        out: list[tuple[Any, bool | int]] = []
        for t in inst.s.tracks:
            if t.kind == "interface":
                link = self.links.links.get(t.name)
                out.append((t, bool(link and link.up)))
            elif t.kind == "script":
                sc = self.scripts.get(t.name)
                out.append((t, sc.good if sc is not None else True))
            elif t.kind == "file":
                tf = self.files.get(t.name)
                out.append((t, tf.value if tf is not None else 0))
        link = self.links.links.get(inst.s.interface)
        if inst.ifindex and (link is None or not link.up):
            from vrrpd.track import Track
            out.append((Track("interface", inst.s.interface, 0), False))
        return out

    def _reevaluate(self, inst: Instance, start: bool = False) -> None:
        _, prio, reasons = effect(inst.s.priority, self._track_status(inst))
        if inst.s.unicast_fault_no_peer and not inst.s.unicast_peers:
            reasons.append("no unicast peers")
        old_prio = inst.machine.effective_priority
        inst.machine.set_priority(prio)
        inst.fault_reasons = reasons
        group = inst.s.sync_group
        members = [self.instances[n] for n in self.groups.get(group or "", []) if n in self.instances]
        for m in members:
            # a member is held in FAULT while any other member has a fault of its own
            m.group_fault = any(o.fault_reasons for o in members if o is not m)
        if start:
            return
        if prio != old_prio:
            log.info("(%s) Changing effective priority from %d to %d", inst.s.name, old_prio, prio)
            self._publish(inst)
            self._priority_notify(inst)
        for m in members or [inst]:
            self._apply_fault(m)

    def _apply_fault(self, inst: Instance) -> None:
        want_fault = bool(inst.fault_reasons) or inst.group_fault
        if want_fault and inst.state in (State.BACKUP, State.MASTER):
            inst.event(Event.FAULT, ", ".join(inst.fault_reasons) or f"sync group {inst.s.sync_group}")
        elif not want_fault and inst.state == State.FAULT and inst.ifindex:
            inst.event(Event.RECOVER)

    def _link_changed(self, name: str) -> None:
        if self.stopping:
            return
        for inst in list(self.instances.values()):
            if inst.s.interface == name or any(t.kind == "interface" and t.name == name for t in inst.s.tracks):
                if inst.ifindex:
                    self._reevaluate(inst)
        if self.pending:
            self.loop.create_task(self._bring_up(False))

    def _file_changed(self, tf: FileTracker) -> None:
        if self.stopping:
            return
        for inst in list(self.instances.values()):
            if any(t.kind == "file" and t.name == tf.name for t in inst.s.tracks) and inst.ifindex:
                self._reevaluate(inst)

    def _script_changed(self, tr: ScriptTracker) -> None:
        if self.stopping:
            return
        for inst in list(self.instances.values()):
            if any(t.kind == "script" and t.name == tr.name for t in inst.s.tracks) and inst.ifindex:
                self._reevaluate(inst)

    # -- transitions -------------------------------------------------------------------------------

    def _transition(self, inst: Instance, a: Action) -> None:
        s = inst.s
        state = a.new.name if a.new != State.INIT else "STOP"
        prio = inst.machine.effective_priority
        if self.stopping and a.new != State.INIT:
            return
        if state == "STOP" and inst.deleted:
            state = "DELETED"  # removed by a reload: notify_deleted if set, else notify_stop (keepalived)
        key = {"MASTER": "notify_master", "BACKUP": "notify_backup", "FAULT": "notify_fault",
               "STOP": "notify_stop", "DELETED": "notify_deleted" if "notify_deleted" in s.notify
               else "notify_stop"}.get(state)
        if key and key in s.notify:
            self.runner.spawn(s.notify[key])
        if "notify" in s.notify:
            self.runner.spawn(s.notify["notify"], ["INSTANCE", s.name, state, str(prio)])
        for f in self.fifos:
            f.write(fifo_line("INSTANCE", s.name, state, prio))
        if s.smtp_alert and self.mailer is not None and state in ("MASTER", "BACKUP", "FAULT"):
            self.mailer.alert(s.name, state)
        self._publish(inst)
        if s.sync_group and a.new != State.INIT:
            self._sync(inst, a)

    def _rx_lower(self, inst: Instance, src: str, priority: int) -> None:
        if inst.s.notify_rx_lower:
            # keepalived's notify_master_rx_lower_pri arguments: INSTANCE name MASTER_RX_LOWER_PRI prio
            self.runner.spawn(inst.s.notify_rx_lower, ["INSTANCE", inst.s.name, "MASTER_RX_LOWER_PRI",
                                                       str(inst.machine.effective_priority)])

    def _priority_notify(self, inst: Instance) -> None:
        if not inst.s.notify_priority_changes:
            return
        state = inst.state.name if inst.state != State.INIT else "STOP"
        prio = inst.machine.effective_priority
        if "notify" in inst.s.notify:
            self.runner.spawn(inst.s.notify["notify"], ["INSTANCE", inst.s.name, state, str(prio)])
        for f in self.fifos:
            f.write(fifo_line("INSTANCE", inst.s.name, state, prio))

    def _sync(self, inst: Instance, a: Action) -> None:
        group = inst.s.sync_group or ""
        members = [self.instances[n] for n in self.groups.get(group, []) if n in self.instances and n != inst.s.name]
        if a.new == State.FAULT or a.old == State.FAULT:
            pass  # faults are shared through group_fault (see _reevaluate)
        elif a.new == State.MASTER:
            for m in members:
                if m.state == State.BACKUP:
                    m.machine.deadline = m.loop.time()
                    m.event(Event.TIMER)
        elif a.new == State.BACKUP and a.old == State.MASTER:
            for m in members:
                if m.state == State.MASTER:
                    m.machine.state = State.BACKUP  # leave master the same way a higher advert would
                    m.machine.deadline = m.loop.time() + m.machine.master_down_interval()
                    m._do(Action("vips_del"))
                    m._do(Action("transition", old=State.MASTER, new=State.BACKUP, reason=f"sync group {group}"))
                    m._arm()
        states = {m.state for m in [inst, *members]}
        if len(states) == 1:
            st = next(iter(states)).name
            gn = self.group_notify.get(group, {})
            key = {"MASTER": "notify_master", "BACKUP": "notify_backup", "FAULT": "notify_fault"}.get(st)
            if key and key in gn:
                self.runner.spawn(gn[key])
            if "notify" in gn:
                self.runner.spawn(gn["notify"], ["GROUP", group, st])
            for f in self.fifos:
                f.write(fifo_line("GROUP", group, st, None))

    # -- bus ---------------------------------------------------------------------------------------

    def _publish(self, inst: Instance) -> None:
        # The documented payload of vrrp.instance.<name> (supervisor.bus); the full view is in dump().
        v = inst.view()
        self.publish(f"vrrp.instance.{inst.s.name}", "state", {k: v[k] for k in ("state", "priority", "interface",
                                                                                  "vips")})
        if inst.state == State.MASTER:
            # At once, not only at the next periodic tick: a role killed right after it became MASTER
            # must still find what it needs to resume safely.
            self._publish_resume()

    def _publish_resume(self) -> None:
        masters = {n: {"last_advert": i.last_advert, "priority": i.machine.effective_priority}
                   for n, i in self.instances.items() if i.state == State.MASTER}
        if masters:
            self.publish("vrrp.resume", "state", {"instances": masters, "clock": "monotonic"})

    def republish(self) -> None:
        for inst in self.instances.values():
            self._publish(inst)

    async def _periodic(self) -> None:
        last_stats = 0.0
        while True:
            await asyncio.sleep(RESUME_EVERY)
            self._publish_resume()
            now = time.monotonic()
            if now - last_stats >= STATS_EVERY:
                last_stats = now
                self.publish("vrrp.stats", "state", self.stats())

    def stats(self) -> dict[str, Any]:
        return {"instances": {n: dict(i.counters) for n, i in self.instances.items()},
                "sockets": dict(self.socket_counters),
                "scripts": {n: {"good": t.good, "runs": t.runs} for n, t in self.scripts.items()}}

    def dump(self) -> dict[str, Any]:
        return {"instances": {n: {**i.view(), "counters": dict(i.counters),
                                  "master_down_interval": i.machine.master_down_interval()}
                              for n, i in self.instances.items()},
                "pending": sorted(self.pending)}
