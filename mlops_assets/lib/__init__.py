"""Stage-neutral helpers: settings, storage, calendars. Cheap to import (no heavy libraries)."""
