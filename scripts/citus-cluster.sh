#!/usr/bin/env bash
# Build Citus and pgvector from ../shared/vendor for the PostgreSQL that pg_config names (Debian's
# postgresql-15 with postgresql-server-dev-15), and install them into its extension folders.
#
#   scripts/citus-cluster.sh build    # as root; does nothing when both are installed already
#   scripts/citus-cluster.sh check    # exit 0 when both are installed, else 1 and why
#
# Starting a coordinator and two workers is tests/citus_cluster.py (the pytest fixture, and
# `python -m tests.citus_cluster` by hand), since the servers run as an unprivileged user.
#
# The sources are the vendored release tarballs, unchanged; the one compile snag is patched in the
# build folder: PostgreSQL 15.18+ exports have_createdb_privilege() from commands/dbcommands.h,
# and Citus 13's pg_version_compat.h defines a static inline of that name for PG < 16.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
vendor="${PGASK_VENDOR_DIR:-$here/../shared/vendor}"
build="${PGASK_CITUS_BUILD_DIR:-${TMPDIR:-/tmp}/pgask-citus-build}"
citus_version=13.2.2
vector_version=0.8.1
jobs="${PGASK_BUILD_JOBS:-2}"

pg_config="${PG_CONFIG:-$(command -v pg_config || true)}"

installed() {
  [ -n "$pg_config" ] && [ -x "$pg_config" ] || return 1
  local lib share
  lib="$("$pg_config" --pkglibdir)"
  share="$("$pg_config" --sharedir)/extension"
  [ -f "$lib/citus.so" ] && [ -f "$lib/vector.so" ] \
    && grep -q "default_version = '13.2-1'" "$share/citus.control" 2>/dev/null \
    && grep -q "default_version = '$vector_version'" "$share/vector.control" 2>/dev/null
}

why_not() {
  if [ -z "$pg_config" ] || [ ! -x "$pg_config" ]; then
    echo "no pg_config${pg_config:+ at $pg_config}: install postgresql-server-dev-15 (Debian) to build Citus and pgvector"
    return
  fi
  if [ ! -f "$("$pg_config" --includedir-server)/postgres.h" ]; then
    echo "pg_config has no server headers: install postgresql-server-dev-15 (Debian) to build Citus and pgvector"
    return
  fi
  if [ "$(id -u)" != 0 ] && [ ! -w "$("$pg_config" --pkglibdir)" ]; then
    echo "Citus/pgvector are not installed in $("$pg_config" --pkglibdir) and this user may not install there (run scripts/citus-cluster.sh build as root)"
    return
  fi
  for f in "$vendor/citus-$citus_version.tar.gz" "$vendor/pgvector-$vector_version.tar.gz"; do
    [ -f "$f" ] || { echo "missing $f"; return; }
  done
}

do_build() {
  if installed; then
    echo "Citus and pgvector $vector_version already installed for $("$pg_config" --version)"
    return 0
  fi
  local reason
  reason="$(why_not)"
  if [ -n "$reason" ]; then
    echo "cannot build: $reason" >&2
    return 3
  fi
  (cd "$vendor" && sha256sum -c --ignore-missing SHA256SUMS >/dev/null)
  mkdir -p "$build"
  local start=$SECONDS

  rm -rf "$build/pgvector-$vector_version"
  tar -xzf "$vendor/pgvector-$vector_version.tar.gz" -C "$build"
  # OPTFLAGS="" leaves out -march=native, so the library runs on any x86-64 the tests may use.
  make -C "$build/pgvector-$vector_version" -j"$jobs" PG_CONFIG="$pg_config" OPTFLAGS="" >/dev/null
  make -C "$build/pgvector-$vector_version" PG_CONFIG="$pg_config" install >/dev/null
  echo "pgvector $vector_version built and installed in $((SECONDS - start))s"

  local citus_start=$SECONDS
  rm -rf "$build/citus-$citus_version"
  tar -xzf "$vendor/citus-$citus_version.tar.gz" -C "$build"
  local compat="$build/citus-$citus_version/src/include/pg_version_compat.h"
  if grep -q 'extern bool have_createdb_privilege' "$("$pg_config" --includedir-server)/commands/dbcommands.h"; then
    # Citus's PG<16 fallback becomes citus_have_createdb_privilege (unused); its one caller,
    # serialize_distributed_ddls.c, includes commands/dbcommands.h and gets the server's.
    sed -i 's/^have_createdb_privilege(void)$/citus_have_createdb_privilege(void)/' "$compat"
    grep -q '^citus_have_createdb_privilege(void)$' "$compat" \
      || { echo "the have_createdb_privilege patch no longer applies to $compat" >&2; return 1; }
  fi
  (cd "$build/citus-$citus_version" \
    && PG_CONFIG="$pg_config" ./configure --quiet >/dev/null \
    && make -j"$jobs" -s >/dev/null \
    && make install -s >/dev/null)
  echo "Citus $citus_version built and installed in $((SECONDS - citus_start))s"
  installed || { echo "installed files not found after the build" >&2; return 1; }
}

case "${1:-}" in
  build) do_build ;;
  check)
    if installed; then echo "installed"; else
      reason="$(why_not)"; echo "${reason:-not installed: run scripts/citus-cluster.sh build as root}"; exit 1
    fi ;;
  *) echo "usage: $0 build|check" >&2; exit 2 ;;
esac
