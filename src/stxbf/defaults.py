"""Hold the defaults that every entry point shares: the settings, the runner's parameters and
the help texts.

They live in one place, so a default changed here is the default everywhere;
docs/configuration.md lists them.
"""

from __future__ import annotations

DEFAULT_API_URL = "https://api.hiro.so"
TARGET_DAYS = 365
MAX_PAGES = 5000  # the page budget of one iteration
CONCURRENCY = 256  # requests in flight at most (fetch/inflight.py sizes the number under it)
MAX_CONCURRENCY = 1024
REQUEST_TIMEOUT = 20.0  # seconds
GIVE_UP_AFTER = 600.0  # a run gives up after this many seconds of failures in a row
SETTLE_HOURS = 24.0  # windows this close to the range's end are fetched again by the next run
STALL_SECONDS = 600.0  # status and health call a run stalled after this long with no progress
# A live run whose requests keep failing is `degraded` (an outage, told before the stall): its
# last DEGRADED_FAILURES requests all failed (more than one failed wave of the default 16 in
# flight), or they have failed for DEGRADED_SECONDS with no page between (a low concurrency).
# The fetch layer logs "API reachable again" after such a streak, and only after one.
DEGRADED_FAILURES = 20
DEGRADED_SECONDS = 15.0
SESSION_NAME = "stx-backfill"  # the tmux session's name
# Only these two variables carry the key (STXBF_API_KEY wins): a generic `API_KEY` meant for
# another tool must never be sent.
API_KEY_ENV_NAMES = ("STXBF_API_KEY", "HIRO_API_KEY")
# These names mean this machine, as a URL's hostname or a bind address. Plain http and no key
# are fine there (the simulator, a local API), and the simulator binds nowhere else.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
