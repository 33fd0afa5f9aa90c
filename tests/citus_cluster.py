"""A real Citus cluster for tests: a coordinator and two workers, each Debian's PostgreSQL 15 with
Citus 13 and pgvector built from ../shared/vendor (scripts/citus-cluster.sh), on loopback ports,
started as an unprivileged user like tests/postgres_server.py.

Every node uses password (SCRAM) authentication; the nodes reach each other with the same
password through a libpq password file (PGPASSFILE in the servers' environment). Each test gets
a database of its own, created on the coordinator and on both workers, with citus and vector in
each and the workers added to the coordinator's metadata (a Citus cluster is per database).

By hand (as root, or once `scripts/citus-cluster.sh build` has run as root):

    python -m tests.citus_cluster        # starts a cluster, prints its URL, stops on Ctrl-C
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from .postgres_server import PASSWORD, PostgresServer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "citus-cluster.sh"
PG15 = Path("/usr/lib/postgresql/15")
# Set by .ci/run: a missing or unbuildable Citus fails the tests instead of skipping them.
REQUIRE = "PGASK_REQUIRE_CITUS"
# 8 shards per distributed table (Citus's default is 32): still several per worker, so every
# search is a multi-shard query merged on the coordinator, at a quarter of the set-up cost.
SHARD_COUNT = 8


class Unavailable(Exception):
    """Citus cannot be built or started on this machine; the message says why."""


def ensure_built() -> None:
    """Build and install Citus and pgvector for PostgreSQL 15 unless they are installed already."""
    if not (PG15 / "bin" / "postgres").exists():
        raise Unavailable("needs Debian's postgresql-15 (apt-get install postgresql-15 postgresql-server-dev-15)")
    check = subprocess.run([str(SCRIPT), "check"], capture_output=True, text=True,
                           env={**os.environ, "PG_CONFIG": str(PG15 / "bin" / "pg_config")})
    if check.returncode == 0:
        return
    if os.geteuid() != 0:
        raise Unavailable(check.stdout.strip())
    started = time.monotonic()
    build = subprocess.run([str(SCRIPT), "build"], capture_output=True, text=True,
                           env={**os.environ, "PG_CONFIG": str(PG15 / "bin" / "pg_config")})
    if build.returncode == 3:  # the build is impossible here (no server headers, no sources)
        raise Unavailable(build.stderr.strip())
    if build.returncode != 0:
        raise RuntimeError(f"building Citus failed after {time.monotonic() - started:.0f}s:\n"
                           f"{build.stdout}\n{build.stderr}")


class CitusCluster:
    """A coordinator and `workers` workers; `create_database(name)` gives the URL of a Citus database."""

    def __init__(self, workers: int = 2, shard_count: int = SHARD_COUNT):
        options = ("-c shared_preload_libraries=citus -c max_prepared_transactions=100 "
                   f"-c citus.shard_count={shard_count} -c max_connections=200")
        self.nodes = [PostgresServer(PG15 / "bin", options=options) for _ in range(workers + 1)]
        for node in self.nodes:
            passfile = node.root / "pgpass"
            passfile.write_text(f"127.0.0.1:*:*:postgres:{PASSWORD}\n")
            passfile.chmod(0o600)
            node.give(passfile)
            node.env["PGPASSFILE"] = str(passfile)

    @property
    def coordinator(self) -> PostgresServer:
        return self.nodes[0]

    @property
    def workers(self) -> list[PostgresServer]:
        return self.nodes[1:]

    def start(self) -> "CitusCluster":
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # stop the others anyway
                pass

    def url(self, database: str, node: PostgresServer | None = None) -> str:
        node = node or self.coordinator
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{node.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new database on every node, made one Citus cluster; its coordinator URL."""
        for node in [*self.workers, self.coordinator]:
            with psycopg.connect(self.url("postgres", node), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            with psycopg.connect(self.url(name, node), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
                conn.execute("CREATE EXTENSION vector")
        with psycopg.connect(self.url(name), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (self.coordinator.port,))
            for worker in self.workers:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (worker.port,))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        for node in self.nodes:
            with psycopg.connect(self.url("postgres", node), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    try:
        ensure_built()
    except Unavailable as exc:
        raise SystemExit(f"cannot start a Citus cluster: {exc}")
    cluster = CitusCluster().start()
    try:
        url = cluster.create_database("pgask")
        print(f"coordinator: {url}")
        for worker in cluster.workers:
            print(f"worker:      {cluster.url('pgask', worker)}")
        print("Ctrl-C stops the cluster and deletes its data", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
