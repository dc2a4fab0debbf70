#!/usr/bin/env bash
# Start or stop the test services on loopback, without systemd:
#   PostgreSQL on 127.0.0.1:$PGPORT and Redis on 127.0.0.1:$REDIS_PORT.
# PG_OPTIONS replaces the test-speed settings (fsync off); benchmarks pass durable ones.
# Installs them (and Chromium with its driver, for the browser tests, and Dovecot, which the
# email tests start themselves) from Debian's packages when missing.
set -euo pipefail

PGPORT=${PGPORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
STATE=${CONCIERGE_SERVICES_DIR:-/tmp/concierge-test-services}
PGDATA="$STATE/pg"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    echo "$dir"
}

install_missing() {
    local packages=()
    [ -n "$(pg_bin)" ] || packages+=(postgresql)
    command -v redis-server >/dev/null || packages+=(redis-server)
    # headless Chromium and its driver for the browser tests
    command -v chromium >/dev/null || packages+=(chromium)
    command -v chromedriver >/dev/null || packages+=(chromium-driver)
    # nginx only to check the deploy kit's config with `nginx -t`; it must not start as a service
    [ -x /usr/sbin/nginx ] || packages+=(nginx-light)
    # Dovecot IMAP for the email channel's polled-mailbox tests (they start it on loopback themselves)
    [ -x /usr/sbin/dovecot ] || packages+=(dovecot-imapd)
    if [ ${#packages[@]} -gt 0 ]; then
        echo "Installing ${packages[*]} from Debian packages..."
        local made_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
            as_root chmod +x /usr/sbin/policy-rc.d
            made_policy=1
        fi
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
        [ -z "$made_policy" ] || as_root rm -f /usr/sbin/policy-rc.d
    fi
}

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start() {
    install_missing
    stop >/dev/null 2>&1 || true
    local bin
    bin=$(pg_bin)
    mkdir -p "$STATE"
    rm -rf "$PGDATA"
    if [ "$(id -u)" = 0 ]; then chown postgres "$STATE"; fi
    pg_run "$bin/initdb" -D "$PGDATA" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    pg_run "$bin/pg_ctl" -D "$PGDATA" -l "$STATE/pg.log" -w -t 60 start \
        -o "-h 127.0.0.1 -p $PGPORT -k $STATE ${PG_OPTIONS:--c fsync=off -c synchronous_commit=off -c full_page_writes=off} -c max_connections=300" >/dev/null
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" --dir "$STATE"
    for _ in $(seq 1 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "PostgreSQL on 127.0.0.1:$PGPORT, Redis on 127.0.0.1:$REDIS_PORT"
}

stop() {
    local bin
    bin=$(pg_bin)
    if [ -n "$bin" ] && [ -f "$PGDATA/postmaster.pid" ]; then
        pg_run "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
    fi
    if [ -f "$STATE/redis.pid" ]; then
        kill "$(cat "$STATE/redis.pid")" 2>/dev/null || true
        rm -f "$STATE/redis.pid"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
