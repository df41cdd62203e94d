"""Process set-up for flows run from volrisk: Prefect home inside the project, analytics off.

Imported by ``flows/__init__.py`` so it runs before Prefect reads its settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.config import get_settings


def configure_environment() -> None:
    """Point Prefect at ``<VOLRISK_HOME>/prefect`` unless the user set ``PREFECT_HOME``."""
    settings = get_settings()
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    # Prefect's SQLite database cannot be created in a folder that does not exist.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
