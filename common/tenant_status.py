"""Tenant lifecycle statuses (`tenants.status`), decided by `agents_bridge.provision.lifecycle`.

The names, and the groups of them that the services test a tenant's status against.
"""

from __future__ import annotations

from typing import Final, Literal

Status = Literal["pending", "active", "grace", "suspended", "deleted"]

PENDING: Final = "pending"
ACTIVE: Final = "active"
GRACE: Final = "grace"
SUSPENDED: Final = "suspended"
DELETED: Final = "deleted"

#: The gateway runs and answers (a failed payment's grace period included).
SERVING: Final[frozenset[str]] = frozenset({ACTIVE, GRACE})
#: The gateway runs or is expected to come (pending: bought, being provisioned).
IN_SERVICE: Final[frozenset[str]] = SERVING | {PENDING}
