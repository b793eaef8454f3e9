"""The ops tests that run services use the integration suite's per-test settings."""

from tests.integration.conftest import migrated, settings

__all__ = ["migrated", "settings"]
