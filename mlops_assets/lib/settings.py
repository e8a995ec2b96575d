"""Which profile the platform runs under, and where its local state lives.

The profile is read when the definitions are *built* (or when a CLI command starts), never at import
time, so importing any module of the package has no dependency on the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
