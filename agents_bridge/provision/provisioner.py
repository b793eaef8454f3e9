"""Provisioning: converge a tenant's gateway on the Docker engine to its lifecycle status.

`Provisioner.reconcile(spec)` is idempotent: whatever the engine and PostgreSQL hold, one
call makes them match the spec, so replayed or repeated lifecycle events converge.

- dedicated (Business, Enterprise): the tenant's own gateway container, sized by its plan;
- shared pool (Individual): an agent in a pool container (`agents.entries.<id>`, written
  to `openclaw.json`, which the gateway hot-reloads); a new pool starts when all are full.

Each container gets its own bridge network and named volume (its state dir), the plan's
memory/CPU/PIDs limits, no capabilities, the gateway token and model key as environment
only, the tenants' workspace files, a health check on /readyz and a port published on
GATEWAY_PUBLISH_HOST. Every gateway gets the public-agent tool policy
(`common.agent_policy`), read back from the live gateway before it gets traffic: one that
lets a probed tool through is taken off traffic, counted in `gateway_tool_policy_ok` and
retried (`recheck`: every unit at start-up, then those still off policy). Suspension
stops a dedicated container or disables a pool agent; deletion removes the container,
network and volume (or the agent). A plan change resizes in place (`container.update`)
or moves the tenant between pool and dedicated.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any

import docker
from docker.models.containers import Container

from agents_bridge.provision import gateway_config as gc
from agents_bridge.provision import policy_check
from agents_bridge.provision.units_store import Unit, UnitStore
from common.errors import RetryableError
from common.settings import Settings
from common.telemetry import GATEWAY_TOOL_POLICY
from common.tenant_status import SERVING

log = logging.getLogger(__name__)
LABEL = "openclaw-saas.unit"
#: Node one-liner run in the container: argv[1]'s bytes into argv[2], same inode (O_TRUNC).
COPY_IN_PLACE = (
    "const fs = require('fs'); fs.writeFileSync(process.argv[2], fs.readFileSync(process.argv[1]))"
)
REWRITE_AFTER_S = 5.0  # a policy still open this long after a write: write the file again


@dataclass(frozen=True)
class TenantSpec:
    """What one tenant's gateway should be, as the lifecycle decided it."""

    tenant_id: str
    agent_id: str
    status: str  # pending | active | grace | suspended | deleted
    plan_id: str
    mode: str  # shared_pool | dedicated
    limits: gc.PlanLimits
    display_name: str
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def serving(self) -> bool:
        return self.status in SERVING


class Provisioner:
    def __init__(self, settings: Settings, client: docker.DockerClient, units: UnitStore) -> None:
        self._settings = settings
        self._client = client
        self._units = units
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self.off_policy: set[str] = set()  # units whose live tool policy did not read back
        self._audited = False

    def reconcile(self, spec: TenantSpec) -> str:
        """Make the engine match `spec`; returns what it did (for logs and tests)."""
        if spec.status == "pending":
            return "pending"
        kind = "dedicated" if spec.mode == "dedicated" else "pool"
        current = self._units.unit_of(spec.tenant_id)
        if spec.status == "deleted":
            if current is not None:
                self._evict(spec.tenant_id, current)
            self._units.delete_gateway(spec.tenant_id)
            return "deleted"
        if current is not None and current.kind != kind:
            self._evict(spec.tenant_id, current)  # mode change: pool <-> dedicated
        unit = self._units.place(spec.tenant_id, spec.agent_id, kind, spec.plan_id)
        self._units.set_enabled(spec.tenant_id, spec.serving)
        if not spec.serving:  # the bridge waits for the gateway until it serves again
            self._units.delete_gateway(spec.tenant_id)
        with self._lock(unit.name):
            if kind == "dedicated" and not spec.serving:
                self._stop(unit)
                return "stopped"
            files = self._workspace(spec)
            container = self._ensure_container(unit, spec.limits, files)
            unit = self._record(unit, container)
            self._wait_ready(unit, spec.agent_id if spec.serving else None)
            self._verify_policy(unit, container)
            if spec.serving:
                self._units.write_gateway(spec.tenant_id, unit, spec.agent_id)
        return "serving" if spec.serving else "disabled"

    def recheck(self) -> dict[str, bool]:
        """The lifecycle ticker's part: every unit until one full pass completes (start-up),
        then only the units still off policy."""
        if not self._audited:
            results = self.converge_all()
            self._audited = True
            off = sorted(name for name, ok in results.items() if not ok)
            log.info("tool policy audit: %d gateways, off traffic: %s", len(results), off)
            return results
        return self.converge_all(set(self.off_policy)) if self.off_policy else {}

    def converge_all(self, names: set[str] | None = None) -> dict[str, bool]:
        """Re-render each running unit's openclaw.json (all, or `names`) and read back its
        tool policy; a unit that passes gets its serving tenants' routes (again)."""
        results: dict[str, bool] = {}
        for unit in self._units.units():
            if names is not None and unit.name not in names:
                continue
            with self._lock(unit.name):
                try:
                    container = self._client.containers.get(unit.name)
                except docker.errors.NotFound:
                    continue
                if container.status != "running":
                    continue  # it gets the current config when it starts again
                self._write_config(container, unit)
                try:
                    self._verify_policy(unit, container)
                except RetryableError as err:
                    log.error("gateway %s stays off traffic: %s", unit.name, err)
                    results[unit.name] = False
                    continue
                for member in self._units.members(unit.name):
                    if member.enabled:
                        self._units.write_gateway(member.tenant_id, unit, member.agent_id)
                results[unit.name] = True
        return results

    # -- containers --------------------------------------------------------------------

    def _ensure_container(
        self, unit: Unit, limits: gc.PlanLimits, files: dict[str, str | bytes]
    ) -> Container:
        archive = gc.state_archive({**files, gc.CONFIG_FILE: self._config(unit)})
        labels = {LABEL: unit.name, "openclaw-saas.kind": unit.kind}
        try:
            container = self._client.containers.get(unit.name)
        except docker.errors.NotFound:
            self._ensure_network_and_volume(unit.name, labels)
            container = self._client.containers.create(
                self._settings.gateway_image,
                name=unit.name,
                hostname=unit.name,
                environment=gc.container_env(self._settings, unit.token.value),
                labels=labels,
                network=f"{unit.name}-net",
                volumes={f"{unit.name}-data": {"bind": gc.STATE_DIR, "mode": "rw"}},
                ports={f"{gc.GATEWAY_PORT}/tcp": (self._settings.gateway_publish_host, None)},
                extra_hosts=_extra_hosts(self._settings.gateway_extra_hosts),
                healthcheck=gc.healthcheck(),
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                restart_policy={"Name": "unless-stopped"},
                **gc.container_limits(limits),
            )
            container.put_archive(gc.STATE_DIR, archive)
            log.info("created gateway container %s (%s)", unit.name, unit.kind)
        else:
            self._resize(container, limits)
            container.put_archive(gc.STATE_DIR, gc.state_archive(files))
            self._write_config(container, unit)
        container.reload()
        if container.status != "running":
            container.start()
            container.reload()
        return container

    def _ensure_network_and_volume(self, name: str, labels: dict[str, str]) -> None:
        try:
            self._client.networks.get(f"{name}-net")
        except docker.errors.NotFound:
            self._client.networks.create(f"{name}-net", driver="bridge", labels=labels)
        try:
            self._client.volumes.get(f"{name}-data")
        except docker.errors.NotFound:
            self._client.volumes.create(f"{name}-data", labels=labels)

    def _resize(self, container: Container, limits: gc.PlanLimits) -> None:
        want = gc.container_limits(limits)
        host = container.attrs.get("HostConfig", {})
        have = (host.get("Memory"), host.get("NanoCpus"), host.get("PidsLimit"))
        if have == (want["mem_limit"], want["nano_cpus"], want["pids_limit"]):
            return
        # docker-py's update() has no NanoCpus, so post the Engine API body directly.
        api = self._client.api
        body = {
            "Memory": want["mem_limit"],
            "MemorySwap": want["memswap_limit"],
            "NanoCpus": want["nano_cpus"],
            "PidsLimit": want["pids_limit"],
        }
        resp = api._post_json(api._url("/containers/{0}/update", container.id), data=body)
        api._raise_for_status(resp)
        container.reload()
        log.info("resized %s to %d MiB, %.2f CPU", container.name, limits.memory_mb, limits.cpus)

    def _stop(self, unit: Unit) -> None:
        try:
            container = self._client.containers.get(unit.name)
        except docker.errors.NotFound:
            return
        if container.status == "running":
            container.stop(timeout=15)
            log.info("stopped gateway container %s", unit.name)

    def _evict(self, tenant_id: str, unit: Unit) -> None:
        """Take the tenant out of `unit`; a dedicated unit goes away with it."""
        with self._lock(unit.name):
            self._units.leave(tenant_id)
            if unit.kind == "pool":
                try:
                    container = self._client.containers.get(unit.name)
                except docker.errors.NotFound:
                    return
                self._write_config(container, unit)
                return
            self.destroy(unit.name)
            self._units.delete_unit(unit.name)

    def destroy(self, name: str) -> None:
        """Remove a unit's container, network and volume (each if present)."""
        getters: tuple[tuple[Any, str, dict[str, bool]], ...] = (
            (self._client.containers, name, {"force": True}),
            (self._client.networks, f"{name}-net", {}),
            (self._client.volumes, f"{name}-data", {"force": True}),
        )
        for collection, key, options in getters:
            try:
                collection.get(key).remove(**options)
            except docker.errors.NotFound:
                continue
        log.info("removed gateway unit %s", name)

    # -- state -------------------------------------------------------------------------

    def _config(self, unit: Unit) -> bytes:
        agents = [
            gc.AgentEntry(m.agent_id, m.display_name, m.enabled)
            for m in self._units.members(unit.name)
        ]
        return gc.config_bytes(gc.gateway_config(self._settings, agents))

    def _workspace(self, spec: TenantSpec) -> dict[str, str | bytes]:
        rendered = gc.workspace_files(spec.display_name, spec.settings)
        base = f"workspaces/{spec.agent_id}"
        return {f"{base}/{name}": text for name, text in rendered.items()}

    def _record(self, unit: Unit, container: Container) -> Unit:
        ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        bound = ports.get(f"{gc.GATEWAY_PORT}/tcp") or []
        if not bound:
            raise RetryableError(f"gateway {unit.name}: port not published yet")
        base_url = f"http://{self._settings.gateway_publish_host}:{bound[0]['HostPort']}"
        health = container.attrs.get("State", {}).get("Health", {}).get("Status", "starting")
        self._units.record_container(unit.name, str(container.id), base_url, health)
        return replace(unit, container_id=str(container.id), base_url=base_url)

    def _wait_ready(self, unit: Unit, agent_id: str | None) -> None:
        """Until /readyz answers 200 and (pool) the agent is listed: bounded, then retry."""
        assert unit.base_url is not None
        deadline = time.monotonic() + self._settings.gateway_ready_timeout_s
        while time.monotonic() < deadline:
            if _get(unit.base_url + "/readyz", None) is not None and (
                agent_id is None or _lists_agent(unit, agent_id)
            ):
                return
            time.sleep(0.5)
        raise RetryableError(f"gateway {unit.name} not ready in time")

    def _write_config(self, container: Container, unit: Unit) -> None:
        """Write openclaw.json; a running gateway hot-reloads it.

        In place, into the same inode: the gateway watches the file itself (chokidar), and
        a file replaced under it, as an archive extraction does, can end the watch, so a
        later change went unnoticed (measured: the pool's policy write never reloaded).
        The archive lands beside it and the gateway's own Node copies it over."""
        config = self._config(unit)
        if container.status != "running":  # read at start-up
            container.put_archive(gc.STATE_DIR, gc.state_archive({gc.CONFIG_FILE: config}))
            return
        container.put_archive(gc.STATE_DIR, gc.state_archive({gc.CONFIG_NEXT: config}))
        result = container.exec_run(
            ["node", "-e", COPY_IN_PLACE, f"{gc.STATE_DIR}/{gc.CONFIG_NEXT}", gc.CONFIG_PATH],
            user=str(gc.GATEWAY_UID),
        )
        if result.exit_code != 0:
            out = bytes(result.output or b"").decode(errors="replace")[:200]
            raise RetryableError(f"gateway {unit.name}: config write failed: {out}")

    def _verify_policy(self, unit: Unit, container: Container) -> None:
        """Until the live policy refuses every probed tool (bounded: a hot reload takes about
        a second, and the file is written again every few seconds in case the gateway's
        watcher missed a write); otherwise the unit's tenants lose their routes and the
        call retries."""
        assert unit.base_url is not None
        members = self._units.members(unit.name)
        # The policy is the gateway's (no agent entry carries tools of its own), so one
        # serving agent reads it back; probing all of a pool's would multiply the calls.
        agents = [m.agent_id for m in members if m.enabled][:1]
        if not agents:
            return  # no agent serves here, so there is nothing to probe and no traffic
        started = time.monotonic()
        rewritten = started
        reading: policy_check.PolicyReading | None = None
        while True:
            try:
                reading = policy_check.read_policy(unit.base_url, unit.token.value, agents)
            except RetryableError as err:  # no verdict (the gateway restarting): poll on
                log.info("gateway %s: tool policy probe: %s", unit.name, err)
                reading = None
            now = time.monotonic()
            if (
                reading is not None and reading.ok
            ) or now - started >= self._settings.gateway_policy_timeout_s:
                break
            if now - rewritten >= REWRITE_AFTER_S:
                self._write_config(container, unit)
                rewritten = now
            time.sleep(0.5)
        if reading is None:
            raise RetryableError(f"gateway {unit.name}: tool policy gave no verdict in time")
        GATEWAY_TOOL_POLICY.labels(unit.name).set(1 if reading.ok else 0)
        if reading.ok:
            self.off_policy.discard(unit.name)
            return
        self.off_policy.add(unit.name)
        for member in members:
            self._units.delete_gateway(member.tenant_id)
        reached = ", ".join(reading.reachable)
        raise RetryableError(f"gateway {unit.name}: tool policy not in force ({reached})")

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def health(self, name: str) -> dict[str, Any]:
        """Container id, state and health of a unit (for `tenant show`)."""
        try:
            container = self._client.containers.get(name)
        except docker.errors.NotFound:
            return {"container": None, "state": "absent", "health": None}
        state = container.attrs.get("State", {})
        return {
            "container": container.short_id,
            "state": state.get("Status"),
            "health": state.get("Health", {}).get("Status"),
        }


def _lists_agent(unit: Unit, agent_id: str) -> bool:
    assert unit.base_url is not None
    body = _get(unit.base_url + "/v1/models", unit.token.value)
    if body is None:
        return False
    try:
        ids = {m.get("id") for m in json.loads(body).get("data", [])}
    except (ValueError, AttributeError):
        return False
    return f"openclaw/{agent_id}" in ids


def _get(url: str, token: str | None) -> bytes | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (our gateway)
        with urllib.request.urlopen(request, timeout=3) as resp:  # noqa: S310
            body: bytes = resp.read()
            return body if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _extra_hosts(raw: str) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in raw.split(",") if ":" in item)
    return {name.strip(): ip.strip() for name, ip in pairs}
