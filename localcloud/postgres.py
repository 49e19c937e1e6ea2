"""A real PostgreSQL for the local cloud and the SQL tests, with nothing installed on the machine.

`DATABASE_URL` (postgresql://user:password@host:port/database, or ?host=/socket/dir for a unix socket)
points at an existing server; otherwise the PostgreSQL 16 bundled by the `pgserver` wheel is started
in a directory of the caller's choosing (unix socket only, so it never listens on a network port).

Creating a cluster (initdb) takes seconds, copying one well under a second: the first start on a machine
creates a template cluster in the temporary directory, and every start copies it."""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import shutil
import tempfile
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pg8000.native  # type: ignore[import-untyped]

DATABASE_URL_VARIABLE = "DATABASE_URL"


@dataclass(frozen=True)
class PostgresAddress:
    """How to connect: a unix socket path or a TCP host (loopback in practice), and credentials."""

    user: str
    password: str | None
    database: str
    host: str | None = None
    port: int = 5432
    unix_socket: str | None = None

    @classmethod
    def from_url(cls, url: str) -> PostgresAddress:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"{DATABASE_URL_VARIABLE} must be a postgresql:// URL, not {parts.scheme}://")
        query = urllib.parse.parse_qs(parts.query)
        socket_dir = query.get("host", [None])[0]
        port = parts.port or 5432
        return cls(
            user=urllib.parse.unquote(parts.username or "postgres"),
            password=urllib.parse.unquote(parts.password) if parts.password else None,
            database=urllib.parse.unquote(parts.path.lstrip("/")) or "postgres",
            host=None if socket_dir else (parts.hostname or "localhost"),
            port=port,
            # libpq's convention: a socket directory holds .s.PGSQL.<port>.
            unix_socket=f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None,
        )

    def connect(self, database: str | None = None, startup_parameters: dict[str, str] | None = None) -> Any:
        """A pg8000 native connection (autocommit unless a transaction is begun explicitly), its
        session defaults set by `startup_parameters` (e.g. {"TimeZone": "UTC"})."""
        return pg8000.native.Connection(
            self.user,
            password=self.password,
            database=database or self.database,
            host=self.host,
            port=self.port,
            unix_sock=self.unix_socket,
            # No TLS over a local socket (pg8000 would build a TLS context, loading the system's CA
            # certificates, for every connection); a server reached by host negotiates as usual.
            ssl_context=False if self.unix_socket else None,
            startup_params=startup_parameters,
        )

    def create_database(self, name: str) -> None:
        """A new empty database; `name` must be a plain identifier (it cannot be a parameter)."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        connection = self.connect()
        try:
            connection.run(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def _skip_durability(address: PostgresAddress) -> None:
    """The embedded server is thrown away on exit: flushing to disk would only slow every CREATE
    DATABASE, commit and shutdown down (all three settings take effect on reload)."""
    connection = address.connect()
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            connection.run(f"ALTER SYSTEM SET {setting} = off")
        connection.run("SELECT pg_reload_conf()")
    finally:
        connection.close()


TEMPLATE = Path(tempfile.gettempdir()) / f"tbs-localcloud-postgres-{importlib.metadata.version('pgserver')}"


def _template(get_server: Any) -> Path:
    """An initialised, stopped cluster (made once per machine, under a lock other processes wait on)."""
    if (TEMPLATE / "PG_VERSION").exists():
        return TEMPLATE
    with open(f"{TEMPLATE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (TEMPLATE / "PG_VERSION").exists():
            building = Path(tempfile.mkdtemp(prefix=f"{TEMPLATE.name}-building-"))
            building.chmod(0o755)  # the server runs as its own system user
            server = get_server(building / "data", cleanup_mode="stop")
            try:
                info = server.get_postmaster_info()
                _skip_durability(
                    PostgresAddress("postgres", None, "postgres", unix_socket=str(info.socket_path))
                )
            finally:
                server.cleanup()  # stopped cleanly: a copy starts without recovery
            (building / "data").rename(TEMPLATE)
            shutil.rmtree(building, ignore_errors=True)
    return TEMPLATE


def _copy_of_template(get_server: Any, data_dir: Path) -> None:
    template = _template(get_server)
    shutil.copytree(template, data_dir, symlinks=True)
    owner = template.stat()
    if os.geteuid() == 0 and owner.st_uid != 0:  # root runs the server as pgserver's system user
        for directory, _, files in os.walk(data_dir):
            for path in [directory, *(os.path.join(directory, name) for name in files)]:
                os.chown(path, owner.st_uid, owner.st_gid)


@contextmanager
def running_postgres(data_dir: Path) -> Iterator[PostgresAddress]:
    """DATABASE_URL's server if set; otherwise an embedded server in `data_dir`, deleted on exit."""
    url = os.environ.get(DATABASE_URL_VARIABLE)
    if url:
        yield PostgresAddress.from_url(url)
        return
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); pgserver copes.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    if not (data_dir / "PG_VERSION").exists():
        _copy_of_template(get_server, data_dir)
    server = get_server(data_dir, cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        yield PostgresAddress(
            user="postgres", password=None, database="postgres", unix_socket=str(info.socket_path)
        )
    finally:
        server.cleanup()
