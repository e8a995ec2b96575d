"""Module-level objects for the `feast` CLI (`feast plan`, `feast apply`, `feast ui`), run from feature_repo/.

The platform itself never imports this file: FeastResource calls `build_repo` with the resolved lake.
For the CLI the lake is the one of the profile, as the platform's Settings resolve it:

    feast plan                                  # local: feature_store.yaml, the lake under ../data
    MLOPS_HOME=/some/home feast -f profiles/local.yaml plan
    feast -f profiles/production.yaml plan      # with MLOPS_PROFILE=production, MLOPS_S3_BUCKET exported

MLOPS_FEATURE_SOURCE_ROOT overrides the lake for any profile. See docs/tools.md.
"""

import atexit
import os
from pathlib import Path

from flight_delay_repo import build_repo

_REPO_DIR = Path(__file__).resolve().parent


def _source_root() -> str:
    if os.environ.get("MLOPS_FEATURE_SOURCE_ROOT"):
        return os.environ["MLOPS_FEATURE_SOURCE_ROOT"]
    if os.environ.get("MLOPS_PROFILE") == "production":
        return f"s3://{os.environ['MLOPS_S3_BUCKET']}/lake/features"
    return str(_home() / "lake" / "features")


def _home() -> Path:
    # Resolved exactly as Settings resolves MLOPS_HOME, so the CLI registers the same source paths as the
    # platform's runs: a different spelling of the same folder reads as a changed view in `feast plan`.
    return Path(os.environ.get("MLOPS_HOME") or _REPO_DIR.parent / "data").expanduser().resolve()


def _drop_empty_online_store(path: Path) -> None:
    """Feast 0.67 opens the SQLite online store while it only plans (SqliteTable connects in __init__),
    which creates an empty file: a command that wrote no table leaves no file behind."""
    if path.exists() and path.stat().st_size == 0:
        path.unlink()


_online_db = _home() / "feast" / "online.db"
if not _online_db.exists():
    atexit.register(_drop_empty_online_store, _online_db)

_objects = build_repo(_source_root(), os.environ.get("MLOPS_S3_ENDPOINT_URL") or None)

for _obj in _objects.all():
    globals()[_obj.name.replace("-", "_")] = _obj
