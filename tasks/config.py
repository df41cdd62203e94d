"""Settings, read from the environment with the ``VOLRISK_`` prefix (or a ``.env`` file).

Every default lives under the project folder (the current working directory), so nothing is written
elsewhere unless the user points a setting there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _project_dir() -> Path:
    return Path.cwd()


class Settings(BaseSettings):
    """volrisk settings.

    Parameters
    ----------
    home : Path
        Root for everything volrisk writes (``VOLRISK_HOME``); defaults to ``./.volrisk``.
    warehouse_path : Path | None
        DuckDB file (``VOLRISK_WAREHOUSE_PATH``); defaults to ``<home>/warehouse.duckdb``.
    data_roots : list[Path]
        Folders that file sources may read from (``VOLRISK_DATA_ROOTS``, a JSON list).
    prefect_home : Path | None
        ``PREFECT_HOME`` for runs started by volrisk; defaults to ``<home>/prefect``.
    reports_dir : Path | None
        Where reports and plots go; defaults to ``./reports``.
    """

    model_config = SettingsConfigDict(env_prefix="VOLRISK_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: _project_dir() / ".volrisk")
    warehouse_path: Path | None = None
    data_roots: list[Path] = Field(
        default_factory=lambda: [_project_dir() / "data", _project_dir().parent / "shared" / "data"]
    )
    prefect_home: Path | None = None
    reports_dir: Path | None = None

    @property
    def warehouse(self) -> Path:
        return self.warehouse_path or self.home / "warehouse.duckdb"

    @property
    def prefect_dir(self) -> Path:
        return self.prefect_home or self.home / "prefect"

    @property
    def reports(self) -> Path:
        return self.reports_dir or _project_dir() / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
