"""PostgreSQL side of provisioning: gateway units, who lives in which, and tenant_gateways.

A *unit* is one gateway container (with its network and volume, all named after it): a
dedicated unit hosts one tenant, a pool unit up to `capacity` agents. Placement runs under
an advisory lock so two tenants never take a pool's last seat at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.secrets import SecretBox
from common.settings import Secret, Settings

_PLACEMENT_LOCK = 72_0006


@dataclass(frozen=True)
class Unit:
    name: str
    kind: str  # dedicated | pool
    plan_id: str
    capacity: int
    token: Secret
    container_id: str | None
    base_url: str | None


@dataclass(frozen=True)
class Member:
    tenant_id: str
    agent_id: str
    display_name: str
    enabled: bool


class UnitStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._box = SecretBox(settings)
        self._prefix = settings.provisioner_prefix

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self._settings.database_url, row_factory=dict_row, autocommit=True)

    def unit_of(self, tenant_id: str) -> Unit | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT u.* FROM gateway_units u JOIN gateway_unit_members m"
                " ON m.unit_name = u.name WHERE m.tenant_id = %s",
                (tenant_id,),
            ).fetchone()
        return None if row is None else self._unit(row)

    def place(self, tenant_id: str, agent_id: str, kind: str, plan_id: str) -> Unit:
        """The unit this tenant belongs in (creating it if needed); membership recorded.

        The caller has already made the tenant leave a unit of the wrong kind.
        """
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PLACEMENT_LOCK,))
            row = conn.execute(
                "SELECT u.* FROM gateway_units u JOIN gateway_unit_members m"
                " ON m.unit_name = u.name WHERE m.tenant_id = %s",
                (tenant_id,),
            ).fetchone()
            if row is not None:
                if kind == "dedicated" and row["plan_id"] != plan_id:
                    conn.execute(
                        "UPDATE gateway_units SET plan_id = %s, updated_at = NOW() WHERE name = %s",
                        (plan_id, row["name"]),
                    )
                    row = {**row, "plan_id": plan_id}
                return self._unit(row)
            if kind == "dedicated":
                name, capacity = f"{self._prefix}d-{agent_id}", 1
            else:
                free = conn.execute(
                    "SELECT u.name FROM gateway_units u LEFT JOIN gateway_unit_members m"
                    " ON m.unit_name = u.name WHERE u.kind = 'pool' AND u.name LIKE %s"
                    " GROUP BY u.name, u.capacity HAVING COUNT(m.tenant_id) < u.capacity"
                    " ORDER BY u.name LIMIT 1",
                    (f"{self._prefix}pool-%",),
                ).fetchone()
                name = str(free["name"]) if free else self._next_pool_name(conn)
                capacity = self._settings.pool_size
            conn.execute(
                "INSERT INTO gateway_units (name, kind, plan_id, capacity, token)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (name, kind, plan_id, capacity, self._box.seal(secrets.token_urlsafe(32))),
            )
            conn.execute(
                "INSERT INTO gateway_unit_members (tenant_id, unit_name, agent_id)"
                " VALUES (%s, %s, %s)",
                (tenant_id, name, agent_id),
            )
            unit = conn.execute("SELECT * FROM gateway_units WHERE name = %s", (name,)).fetchone()
        assert unit is not None
        return self._unit(unit)

    def _next_pool_name(self, conn: psycopg.Connection[dict[str, Any]]) -> str:
        row = conn.execute(
            "SELECT COUNT(*) AS n FROM gateway_units WHERE kind = 'pool' AND name LIKE %s",
            (f"{self._prefix}pool-%",),
        ).fetchone()
        n = int(str(row["n"])) if row else 0
        while True:
            n += 1
            name = f"{self._prefix}pool-{n}"
            taken = conn.execute("SELECT 1 FROM gateway_units WHERE name = %s", (name,)).fetchone()
            if taken is None:
                return name

    def units(self) -> list[Unit]:
        """This deployment's units that have a container (the policy audit walks them)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM gateway_units WHERE container_id IS NOT NULL"
                " AND starts_with(name, %s) ORDER BY name",
                (self._prefix,),
            ).fetchall()
        return [self._unit(r) for r in rows]

    def members(self, unit_name: str) -> list[Member]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT m.tenant_id::text AS tenant_id, m.agent_id, m.enabled,"
                " COALESCE(t.display_name, m.agent_id) AS display_name"
                " FROM gateway_unit_members m JOIN tenants t ON t.id = m.tenant_id"
                " WHERE m.unit_name = %s ORDER BY m.agent_id",
                (unit_name,),
            ).fetchall()
        return [
            Member(str(r["tenant_id"]), str(r["agent_id"]), str(r["display_name"]), r["enabled"])
            for r in rows
        ]

    def set_enabled(self, tenant_id: str, enabled: bool) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE gateway_unit_members SET enabled = %s WHERE tenant_id = %s",
                (enabled, tenant_id),
            )

    def leave(self, tenant_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM gateway_unit_members WHERE tenant_id = %s", (tenant_id,))

    def delete_unit(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM gateway_units WHERE name = %s", (name,))

    def record_container(self, name: str, container_id: str, base_url: str, health: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE gateway_units SET container_id = %s, base_url = %s, health = %s,"
                " updated_at = NOW() WHERE name = %s",
                (container_id, base_url, health, name),
            )

    def write_gateway(self, tenant_id: str, unit: Unit, agent_id: str) -> None:
        """What the bridge reads: this tenant's gateway URL, sealed token and agent id."""
        assert unit.base_url is not None
        mode = "dedicated" if unit.kind == "dedicated" else "shared_pool"
        with self._connect() as conn:
            current = conn.execute(
                "SELECT base_url, agent_id, mode, token FROM tenant_gateways WHERE tenant_id = %s",
                (tenant_id,),
            ).fetchone()
            if (
                current is not None
                and (current["base_url"], current["agent_id"], current["mode"])
                == (unit.base_url, agent_id, mode)
                and self._box.open(bytes(current["token"])).value == unit.token.value
            ):
                return  # unchanged: no directory reload for nothing
            conn.execute(
                "INSERT INTO tenant_gateways (tenant_id, base_url, token, agent_id, mode)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id) DO UPDATE SET"
                " base_url = EXCLUDED.base_url, token = EXCLUDED.token,"
                " agent_id = EXCLUDED.agent_id, mode = EXCLUDED.mode, updated_at = NOW()",
                (tenant_id, unit.base_url, self._box.seal(unit.token.value), agent_id, mode),
            )

    def delete_gateway(self, tenant_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM tenant_gateways WHERE tenant_id = %s", (tenant_id,))

    def _unit(self, row: dict[str, Any]) -> Unit:
        return Unit(
            name=str(row["name"]),
            kind=str(row["kind"]),
            plan_id=str(row["plan_id"]),
            capacity=int(str(row["capacity"])),
            token=self._box.open(bytes(row["token"])),
            container_id=str(row["container_id"]) if row.get("container_id") else None,
            base_url=str(row["base_url"]) if row.get("base_url") else None,
        )
