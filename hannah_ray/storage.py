"""``hydra.sweeper.storage`` -> an Optuna storage, with credentials kept out of sight.

* ``null``: in memory (lost when the sweep ends);
* ``sqlite:///file.db``: set up for several writers (WAL journal, 60 s busy timeout);
* any other SQLAlchemy URL (``postgresql://``, ``mysql://``, ...);
* ``journal:///file.journal``: Optuna's journal file with its file lock (fast, NFS-safe);
* ``redis://[:password@]host:port/db``: Optuna's journal kept in Redis (needs the ``redis`` package).

Relative file paths are taken from the directory the command was started in, as in SQLAlchemy
(``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from .errors import SweepConfigError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from sqlalchemy.engine import URL

log = logging.getLogger("hannah_ray.sweep")
T = TypeVar("T")

JOURNAL_SCHEME = "journal://"
REDIS_SCHEMES = ("redis://", "rediss://")
SQLITE_BUSY_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 10


def mask_url(url: str | None) -> str:
    """The URL with its password(s) replaced by ``***`` (safe to print, log and write)."""
    if url is None:
        return "memory (not stored)"
    return _mask(url, url_secrets(url))


def url_secrets(url: str) -> list[str]:
    """Every form in which a password of ``url`` may appear in text, longest first: as written
    (percent-encoded or not) and decoded, from the user part and from ``password=`` parameters."""
    from urllib.parse import unquote

    if url.startswith(JOURNAL_SCHEME) or "://" not in url:
        return []
    rest = url.partition("://")[2]
    query = rest.partition("?")[2]
    authority = rest.partition("/")[0].partition("?")[0]
    written = []
    if "@" in authority:
        # The password runs to the last '@' of the authority, so an unencoded '@' in it stays hidden.
        user_info = authority.rpartition("@")[0]
        written.append(user_info.partition(":")[2])
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key).lower() in _PASSWORD_PARAMETERS:
            written.append(value)
    try:
        from sqlalchemy.engine import make_url

        written.append(str(make_url(url).password or ""))
    except Exception:
        pass
    forms = {form for value in written for form in (value, unquote(value)) if form}
    return sorted(forms, key=len, reverse=True)


_PASSWORD_PARAMETERS = ("password", "passwd", "pwd")


def _mask(text: str, secrets: list[str]) -> str:
    """``text`` with the secrets replaced where a URL holds a password (``:secret@``,
    ``password=secret``); anywhere, if that leaves a password in place."""
    masked = text
    for secret in secrets:
        masked = masked.replace(f":{secret}@", ":***@")
        for key in _PASSWORD_PARAMETERS:
            masked = masked.replace(f"{key}={secret}", f"{key}=***")
    if any(left != "***" for left in url_secrets(masked)):
        masked = _replace_all(masked, secrets)
    return masked


def _replace_all(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def resolve_storage_url(url: str | None, base_dir: str) -> str | None:
    """Make a relative sqlite or journal path absolute against ``base_dir``."""
    if url is None:
        return None
    url = str(url)
    for prefix in ("sqlite:///", JOURNAL_SCHEME + "/"):
        if url.startswith(prefix):
            path = url[len(prefix) :]
            if path and path != ":memory:" and not os.path.isabs(path):
                return prefix + os.path.join(base_dir, path)
    return url


def retry_when_locked(
    action: Callable[[], T], what: str, attempts: int = 6, first_delay_s: float = 0.5
) -> T:
    """Run a storage write, again (with backoff) while SQLite answers "database is locked": a
    writer outside this sweep held the file longer than the busy timeout."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:
            if not is_locked(error) or attempt == attempts - 1:
                raise
            delay = first_delay_s * 2**attempt
            log.warning("%s: the database is locked; trying again in %.1f s.", what, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def is_locked(error: BaseException) -> bool:
    """SQLite said "database is locked", in ``error`` or its causes: Optuna's RDBStorage wraps
    the SQLAlchemy error in a ``StorageInternalError`` whose own text does not say it."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if "database is locked" in str(cause):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def create_storage(url: str | None) -> BaseStorage:
    """Open (and create if needed) the storage; fails fast with a clear, credential-free message."""
    import optuna

    if url is None:
        return optuna.storages.InMemoryStorage()
    if url.startswith(JOURNAL_SCHEME):
        return _journal_storage(url)
    if url.startswith(REDIS_SCHEMES):
        return _redis_storage(url)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception as error:
        raise SweepConfigError(
            f"hydra.sweeper.storage={mask_url(url)!r} is not a storage URL. Allowed: null, "
            "sqlite:///file.db, a SQLAlchemy URL such as postgresql://user:pass@host/db, "
            "journal:///file.journal, or redis://host:port/db."
        ) from error
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(parsed.database)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(parsed))
    except Exception as error:
        raise SweepConfigError(
            f"Cannot open hydra.sweeper.storage={mask_url(url)!r}: "
            f"{type(error).__name__}: {_scrub(str(error), url)}"
        ) from None


# The connect-timeout argument of each database driver that has one: the names differ.
_CONNECT_TIMEOUT_ARGS = {
    "psycopg": "connect_timeout",
    "psycopg2": "connect_timeout",
    "pymysql": "connect_timeout",
    "mysqldb": "connect_timeout",
    # Not pg8000: its `timeout` bounds every socket read, so a long query or lock wait would fail.
}


def engine_kwargs(parsed: URL) -> dict[str, Any]:
    """SQLAlchemy engine arguments for a parsed storage URL: SQLite's busy timeout, or the
    driver's connect timeout (an unknown driver gets none: it may reject any name we guess)."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        return kwargs
    try:
        driver = parsed.get_driver_name()
    except Exception:  # a dialect SQLAlchemy does not know: RDBStorage will say so
        return kwargs
    timeout_arg = _CONNECT_TIMEOUT_ARGS.get(driver)
    if timeout_arg is not None:
        kwargs["connect_args"] = {timeout_arg: CONNECT_TIMEOUT_S}
    return kwargs


def _redis_storage(url: str) -> BaseStorage:
    """Optuna's journal in Redis, checked with a ping so a bad server fails before any trial."""
    try:
        import redis
    except ImportError:
        raise SweepConfigError(
            f"hydra.sweeper.storage={mask_url(url)!r} needs the redis package: "
            "pip install 'hannah-ray[redis]'."
        ) from None
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalRedisBackend

    try:
        redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S).ping()
        with warnings.catch_warnings():  # "experimental" since Optuna 3.1; we test it
            warnings.simplefilter("ignore", ExperimentalWarning)
            return JournalStorage(JournalRedisBackend(url))
    except Exception as error:
        raise SweepConfigError(
            f"Cannot open hydra.sweeper.storage={mask_url(url)!r}: "
            f"{type(error).__name__}: {_scrub(str(error), url)}"
        ) from None


def _journal_storage(url: str) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = url[len(JOURNAL_SCHEME) :]
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise SweepConfigError(
            f"hydra.sweeper.storage={url!r} names no file. Allowed: journal:///relative.journal "
            "or journal:////absolute/path.journal."
        )
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise SweepConfigError(
            f"hydra.sweeper.storage={url!r}: the directory {directory!r} does not exist."
        )
    return JournalStorage(JournalFileBackend(path))


def _prepare_sqlite(database: str | None) -> None:
    """WAL lets readers and one writer work at once; it is a property of the file, set once."""
    if not database or database == ":memory:":
        return
    directory = os.path.dirname(database) or "."
    if not os.path.isdir(directory):
        raise SweepConfigError(
            f"hydra.sweeper.storage: the directory {directory!r} of the SQLite file does not exist."
        )
    with sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT_S) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def _scrub(text: str, url: str) -> str:
    """Remove the password of ``url`` from a driver's error text, wherever it appears."""
    return _replace_all(text, url_secrets(url))


def storage_secrets(config: DictConfig) -> list[str]:
    """The forms of the password(s) in the (resolved) ``hydra.sweeper.storage`` URL, if any."""
    url = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    return url_secrets(url) if isinstance(url, str) else []


def mask_storage_secrets(config: DictConfig, secrets: list[str]) -> None:
    """Replace the storage password, in place, wherever Hydra would write it: the sweeper's
    ``storage`` and the recorded command-line overrides (``hydra.yaml``, ``multirun.yaml``)."""
    if not secrets:
        return
    hydra = config.hydra
    with read_write(hydra), open_dict(hydra):
        raw = hydra.sweeper._get_node("storage")._value()
        if isinstance(raw, str) and _mask(raw, secrets) != raw:
            hydra.sweeper.storage = _mask(raw, secrets)
        for key in ("hydra", "task"):
            overrides = hydra.overrides[key]
            for index, line in enumerate(list(overrides)):
                overrides[index] = _mask(line, secrets)
