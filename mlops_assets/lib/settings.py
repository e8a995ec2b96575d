"""Which profile the platform runs under, and where its local state lives.

The profile is read when the definitions are *built* (or when a CLI command starts), never at import
time, so importing any module of the package has no dependency on the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Profile = Literal["local", "production"]
PROFILES: tuple[Profile, ...] = ("local", "production")

PROFILE_ENV = "MLOPS_PROFILE"
HOME_ENV = "MLOPS_HOME"


@dataclass(frozen=True)
class Settings:
    """The one setting that selects a profile, plus the local data directory.

    `home` holds everything the `local` profile writes (landing zone, lake, quarantine, warehouse);
    the `production` profile uses it only for scratch space.
    """

    profile: Profile
    home: Path

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    profile = env.get(PROFILE_ENV, "local").strip().lower()
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={profile!r} is not a profile; choose one of {', '.join(PROFILES)}")
    home = Path(env.get(HOME_ENV) or Path.cwd() / "data").expanduser().resolve()
    return Settings(profile=profile, home=home)  # type: ignore[arg-type]


def env_setting(name: str, default: Any = None, env: Any = None) -> Any:
    """The one rule for a profile's settings: `dg.EnvVar(name)` when the variable is set, else `default`.

    Called when the definitions are built, which happens again in each run's own process (the run worker
    loads the code location), so a run follows its own environment. An EnvVar's value is read when the
    run starts, so a credential or endpoint never becomes a plain string in the resource config the UI
    shows. `env=dg.EnvVar.int` for integers.
    """
    import dagster as dg

    if not os.environ.get(name):
        return default
    return (env or dg.EnvVar)(name)
