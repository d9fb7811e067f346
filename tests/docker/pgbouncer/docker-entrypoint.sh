#!/bin/sh
# `pgbouncer`: write /etc/pgbouncer/pgbouncer.ini from the environment, copy the userlist from
# AUTH_FILE (readable by root only where it is mounted) for the postgres user, and run pgbouncer as
# that user. `reload`: copy the userlist again and make the running pgbouncer read it (SIGHUP).
set -eu
userlist=/etc/pgbouncer/userlist.txt
copy_userlist() {
    install -o postgres -g postgres -m 600 "${AUTH_FILE:?AUTH_FILE names the mounted userlist}" "$userlist"
}
if [ "${1:-}" = reload ]; then
    copy_userlist
    kill -HUP 1
    exit 0
fi
if [ "${1:-}" != pgbouncer ]; then
    exec "$@"
fi
copy_userlist
config=/etc/pgbouncer/pgbouncer.ini
cat >"$config" <<CONFIG
[databases]
* = host=${DATABASES_HOST:-postgres} port=${DATABASES_PORT:-5432}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = ${LISTEN_PORT:-6432}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $userlist
pool_mode = ${POOL_MODE:-transaction}
max_client_conn = ${MAX_CLIENT_CONN:-1000}
default_pool_size = ${DEFAULT_POOL_SIZE:-20}
reserve_pool_size = 0
stats_users = ${STATS_USERS:-}
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile =
pidfile =
CONFIG
chown postgres:postgres "$config"
chmod 600 "$config"
ulimit -n "$(( ${MAX_CLIENT_CONN:-1000} + 200 ))" 2>/dev/null || true
exec setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer "$config"
