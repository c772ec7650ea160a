#!/usr/bin/env bash
# rtml's real services for the scale-out shape and the integration tests.
#
#   bash scripts/services.sh start  [service...]   install if missing, start, health-check
#   bash scripts/services.sh stop   [service...]   stop cleanly (data is kept)
#   bash scripts/services.sh status [service...]   one line per service; exit 3 if any is down
#   bash scripts/services.sh restart [service...]
#
# Services (default: all, in this order): postgres redis kafka search mlflow nginx
# Everything listens on 127.0.0.1 only. See docs/services.md.
#
# Layout: one function group per service -- install_X, start_X, stop_X, health_X,
# status_X -- and the SERVICES list below. A new service adds its group and its name.
#
# Knobs (all optional):
#   RTML_SERVICES_DIR          state/data/logs root            (default: <repo>/.services)
#   RTML_SERVICES_TIMEOUT      seconds a service may take to come up (default: 120)
#   RTML_PG_PORT               PostgreSQL port                 (default: 5432)
#   RTML_PG_DIR                PostgreSQL base dir (data/, run/, postgres.log), must be
#                              reachable by the postgres user  (default: $RTML_SERVICES_DIR/postgres,
#                              or /var/lib/rtml-postgres when the postgres user cannot reach that)
#   RTML_REDIS_PORT            Redis port                      (default: 6379)
#   RTML_KAFKA_PORT            Kafka broker port               (default: 9092)
#   RTML_KAFKA_CONTROLLER_PORT Kafka KRaft controller port     (default: 9093)
#   RTML_KAFKA_HEAP            broker -Xmx                     (default: 768m)
#   RTML_KAFKA_AUTO_CREATE_TOPICS  auto.create.topics.enable   (default: false)
#   RTML_SERVICES_PYTHON       Python with confluent_kafka for the Kafka health check
#                              (default: <repo>/.venv/bin/python; without it: port + log line)
#   RTML_SEARCH_PORT           search server (osmem-server, OpenSearch API) port (default: 9200)
#   RTML_MLFLOW_PORT           MLflow tracking server port (default: 5000); its backend store is
#                              the database `mlflow` on the PostgreSQL above (started first)
#   RTML_GATEWAY_PORT          NGINX gateway port (default: 8080), in front of `rtml serve` on
#   RTML_SERVER_PORT           (default: 8000) of the project RTML_PROJECT_DIR (default: the
#                              e-commerce example); the API key of /predict and /events is
#                              RTML_API_KEY, else a random one kept in $RTML_SERVICES_DIR/nginx/api_key
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES=(postgres redis kafka search mlflow nginx)

HOST=127.0.0.1
SERVICES_DIR="${RTML_SERVICES_DIR:-$REPO_ROOT/.services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"
TIMEOUT="${RTML_SERVICES_TIMEOUT:-120}"

PG_PORT="${RTML_PG_PORT:-5432}"
PG_USER=rtml
PG_PASSWORD=rtml
PG_DB=rtml

REDIS_PORT="${RTML_REDIS_PORT:-6379}"
REDIS_DIR="$SERVICES_DIR/redis"

KAFKA_PORT="${RTML_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${RTML_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${RTML_KAFKA_HEAP:-768m}"
KAFKA_AUTO_CREATE="${RTML_KAFKA_AUTO_CREATE_TOPICS:-false}"
KAFKA_DIR="$SERVICES_DIR/kafka"
JVM_POM="$REPO_ROOT/deploy/jvm/pom.xml"
JVM_LIB="$REPO_ROOT/deploy/jvm/lib"
VENV_PY="${RTML_SERVICES_PYTHON:-$REPO_ROOT/.venv/bin/python}"

SEARCH_PORT="${RTML_SEARCH_PORT:-9200}"
SEARCH_DIR="$SERVICES_DIR/search"
SEARCH_PACKAGE='osmem-server>=0.1.6'

MLFLOW_PORT="${RTML_MLFLOW_PORT:-5000}"
MLFLOW_DIR="$SERVICES_DIR/mlflow"
MLFLOW_DB=mlflow
MLFLOW_PACKAGES=('mlflow>=3' 'psycopg[binary]>=3.2')

GATEWAY_PORT="${RTML_GATEWAY_PORT:-8080}"
SERVER_PORT="${RTML_SERVER_PORT:-8000}"
NGINX_DIR="$SERVICES_DIR/nginx"
GATEWAY_PROJECT="${RTML_PROJECT_DIR:-$REPO_ROOT/examples/ecommerce}"

# ----------------------------------------------------------------------------- helpers

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

# die with the tail of one or more log files
die_with_logs() {
    local msg="$1"
    shift
    local f
    for f in "$@"; do
        if [[ -f "$f" ]]; then
            printf '[services] ---- last lines of %s ----\n' "$f" >&2
            tail -n 40 "$f" >&2 || true
        fi
    done
    die "$msg"
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

APT_UPDATED=0
apt_update() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install the missing packages by hand"
    [[ "$APT_UPDATED" -eq 0 ]] || return 0
    log "apt-get update (log: $SERVICES_DIR/apt.log)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$SERVICES_DIR/apt.log" 2>&1 ||
        die_with_logs "apt-get update failed" "$SERVICES_DIR/apt.log"
    APT_UPDATED=1
}

# apt_pick PKG... -- the first package apt knows about
apt_pick() {
    apt_update
    local p
    for p in "$@"; do
        if apt-cache show "$p" >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    die "none of these packages is available from apt: $*"
}

# apt_install PKG... -- non-interactive install; package maintainer scripts are kept
# from starting their own copies of the daemons (they would take our ports).
apt_install() {
    apt_update
    local policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
    if [[ ! -e "$policy" ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        added_policy=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >>"$SERVICES_DIR/apt.log" 2>&1 || rc=$?
    if [[ "$added_policy" -eq 1 ]]; then as_root rm -f "$policy"; fi
    [[ "$rc" -eq 0 ]] || die_with_logs "apt-get install $* failed (rc=$rc)" "$SERVICES_DIR/apt.log"
}

# port_open PORT -- something accepts TCP connections on 127.0.0.1:PORT
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# pid_matches PID PATTERN -- PID is alive and its command line contains PATTERN
pid_matches() {
    local pid="$1" pattern="$2"
    [[ -n "$pid" && "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

read_pid() {
    if [[ -f "$1" ]]; then tr -dc '0-9' <"$1" || true; fi
}

# wait_for SECONDS ALIVE_CMD HEALTH_CMD -- poll HEALTH_CMD every second; give up early
# when ALIVE_CMD says the process died. Returns 0 healthy, 1 timeout, 2 died.
wait_for() {
    local secs="$1" alive="$2" health="$3" start=$SECONDS
    while ((SECONDS - start < secs)); do
        if $health >/dev/null 2>&1; then return 0; fi
        if ! $alive >/dev/null 2>&1; then
            # one last look: it may have come up and we raced the check
            $health >/dev/null 2>&1 && return 0
            return 2
        fi
        sleep 1
    done
    return 1
}

# port_free_or_die PORT NAME -- refuse to start when a foreign process holds the port
port_free_or_die() {
    if port_open "$1"; then
        die "$2: port $HOST:$1 is already taken by another process (not one started by this script). \
Stop it, or choose another port (see the RTML_*_PORT knobs in scripts/services.sh)."
    fi
}

# --------------------------------------------------------------------------- postgres

pg_bindir() {
    # the highest installed major version
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/pg_ctl" ]]; then echo "$d"; fi
    done | sort -t/ -k5,5n | tail -n 1
}

# the postgres server runs as the postgres user when we are root (initdb refuses root)
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_base() {
    if [[ -n "${RTML_PG_DIR:-}" ]]; then
        echo "$RTML_PG_DIR"
    elif [[ -f "$SERVICES_DIR/postgres/data/PG_VERSION" ]]; then
        echo "$SERVICES_DIR/postgres"
    elif [[ -f /var/lib/rtml-postgres/data/PG_VERSION ]]; then
        echo /var/lib/rtml-postgres
    elif is_root && id postgres >/dev/null 2>&1 &&
        ! runuser -u postgres -- test -x "$SERVICES_DIR" 2>/dev/null; then
        # the repo is not traversable by the postgres user: keep the cluster in /var/lib
        echo /var/lib/rtml-postgres
    else
        echo "$SERVICES_DIR/postgres"
    fi
}

install_postgres() {
    [[ -n "$(pg_bindir)" ]] && return 0
    log "postgres: PostgreSQL server not found, installing the Debian package"
    # no default cluster: it would want port 5432 for itself
    apt_install postgresql-common
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
        as_root sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    apt_install postgresql
    [[ -n "$(pg_bindir)" ]] || die "postgres: installed, but no /usr/lib/postgresql/*/bin/pg_ctl"
}

pg_running() {
    local base data pid
    base="$(pg_base)"
    data="$base/data"
    pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null | tr -dc '0-9' || true)"
    pid_matches "$pid" postgres
}

health_postgres() {
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=3 \
        "$(pg_bindir)/psql" -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
        -tAc 'select 1' 2>/dev/null | grep -qx 1
}

pg_ready() {
    "$(pg_bindir)/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2
}

# superuser psql over the unix socket (peer auth as the OS user running the server)
pg_admin_psql() {
    local base
    base="$(pg_base)"
    as_pg "$(pg_bindir)/psql" -h "$base/run" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

pg_bootstrap_role() {
    pg_admin_psql -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
            CREATE ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
        END IF; END \$\$;" >/dev/null
    if [[ "$(pg_admin_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
        pg_admin_psql -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
    fi
}

start_postgres() {
    local bin base data logf pid
    bin="$(pg_bindir)"
    base="$(pg_base)"
    data="$base/data"
    logf="$base/postgres.log"

    if pg_running; then
        if health_postgres; then
            log "postgres: already running on $HOST:$PG_PORT"
            return 0
        fi
    fi

    mkdir -p "$base/run"
    if is_root; then chown postgres:postgres "$base" "$base/run"; fi
    as_pg test -w "$base" || die "postgres: $base is not writable by the postgres user"

    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "postgres: initdb $data"
        as_pg "$bin/initdb" -D "$data" -E UTF8 --locale=C.UTF-8 \
            --auth-local=peer --auth-host=scram-sha-256 >"$base/initdb.log" 2>&1 ||
            as_pg "$bin/initdb" -D "$data" -E UTF8 --locale=C \
                --auth-local=peer --auth-host=scram-sha-256 >"$base/initdb.log" 2>&1 ||
            die_with_logs "postgres: initdb failed" "$base/initdb.log"
    fi
    local have want
    have="$(cat "$data/PG_VERSION")"
    want="$(basename "$(dirname "$bin")")"
    [[ "$have" == "$want" ]] ||
        die "postgres: $data was made by PostgreSQL $have but the installed server is $want; \
remove $base to start over (its data is lost) or install postgresql-$have"

    if ! pg_running; then
        # a stale postmaster.pid (killed server, reused pid) would block the start
        if [[ -f "$data/postmaster.pid" ]]; then
            log "postgres: removing stale $data/postmaster.pid"
            rm -f "$data/postmaster.pid"
        fi
        port_free_or_die "$PG_PORT" postgres
        log "postgres: starting on $HOST:$PG_PORT (data $data)"
        as_pg "$bin/pg_ctl" -D "$data" -l "$logf" -w -t "$TIMEOUT" -s \
            -o "-c listen_addresses=$HOST -p $PG_PORT -c unix_socket_directories=$base/run" \
            start 9>&- || die_with_logs "postgres: pg_ctl start failed" "$logf"
    fi

    wait_for "$TIMEOUT" pg_running pg_ready || die_with_logs "postgres: not ready after ${TIMEOUT}s" "$logf"
    pg_bootstrap_role || die_with_logs "postgres: could not create role/database $PG_USER" "$logf"
    health_postgres || die_with_logs "postgres: up, but cannot log in as $PG_USER" "$logf"
    pid="$(head -n 1 "$data/postmaster.pid" | tr -dc '0-9')"
    log "postgres: up on $HOST:$PG_PORT (pid $pid)"
}

stop_postgres() {
    local bin base data
    bin="$(pg_bindir)"
    base="$(pg_base)"
    data="$base/data"
    if [[ -z "$bin" ]] || ! pg_running; then
        log "postgres: not running"
        return 0
    fi
    log "postgres: stopping"
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 -s stop ||
        die_with_logs "postgres: pg_ctl stop failed" "$base/postgres.log"
}

status_postgres() {
    if [[ -n "$(pg_bindir)" ]] && pg_running && health_postgres; then
        echo "postgres  up    $HOST:$PG_PORT  data=$(pg_base)/data  url=postgresql://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB"
    else
        echo "postgres  down  $HOST:$PG_PORT  data=$(pg_base)/data"
        return 1
    fi
}

# ------------------------------------------------------------------------------ redis

install_redis() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
    log "redis: redis-server not found, installing the Debian package"
    apt_install redis-server redis-tools
}

redis_running() { pid_matches "$(read_pid "$REDIS_DIR/redis.pid")" redis-server; }

health_redis() {
    [[ "$(timeout 5 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

start_redis() {
    mkdir -p "$REDIS_DIR"
    if redis_running && health_redis; then
        log "redis: already running on $HOST:$REDIS_PORT"
        return 0
    fi
    if ! redis_running; then
        rm -f "$REDIS_DIR/redis.pid"
        port_free_or_die "$REDIS_PORT" redis
        log "redis: starting on $HOST:$REDIS_PORT (dir $REDIS_DIR)"
        redis-server --daemonize yes \
            --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
            --dir "$REDIS_DIR" --appendonly yes --appendfsync everysec \
            --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" 9>&- ||
            die_with_logs "redis: redis-server failed to start" "$REDIS_DIR/redis.log"
    fi
    wait_for "$TIMEOUT" redis_running health_redis ||
        die_with_logs "redis: not answering PING after ${TIMEOUT}s" "$REDIS_DIR/redis.log"
    log "redis: up on $HOST:$REDIS_PORT (pid $(read_pid "$REDIS_DIR/redis.pid"))"
}

stop_redis() {
    if ! redis_running; then
        rm -f "$REDIS_DIR/redis.pid"
        log "redis: not running"
        return 0
    fi
    local pid
    pid="$(read_pid "$REDIS_DIR/redis.pid")"
    log "redis: stopping"
    redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 30; i++)); do
        pid_matches "$pid" redis-server || return 0
        sleep 1
    done
    log "redis: did not stop in 30s, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
}

status_redis() {
    if redis_running && health_redis; then
        echo "redis     up    $HOST:$REDIS_PORT  dir=$REDIS_DIR  url=redis://$HOST:$REDIS_PORT/0"
    else
        echo "redis     down  $HOST:$REDIS_PORT  dir=$REDIS_DIR"
        return 1
    fi
}

# ------------------------------------------------------------------------------ kafka

java_major() {
    command -v java >/dev/null 2>&1 || {
        echo 0
        return
    }
    java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit}'
}

kafka_lib_stamp() { sha256sum "$JVM_POM" | cut -d' ' -f1; }

kafka_lib_complete() {
    [[ -f "$JVM_LIB/.complete" && "$(cat "$JVM_LIB/.complete")" == "$(kafka_lib_stamp)" ]]
}

install_kafka() {
    if (($(java_major) < 17)); then
        log "kafka: Java 17+ not found, installing a JRE"
        apt_update
        apt_install "$(apt_pick openjdk-17-jre-headless openjdk-21-jre-headless default-jre-headless)"
        (($(java_major) >= 17)) || die "kafka: need Java 17+, have $(java_major)"
    fi
    kafka_lib_complete && return 0
    if ! command -v mvn >/dev/null 2>&1; then
        log "kafka: Maven not found, installing it"
        apt_install maven
    fi
    log "kafka: fetching the Apache Kafka jars with Maven (first time: can take minutes)"
    rm -rf "$JVM_LIB"
    mkdir -p "$JVM_LIB"
    # outputDirectory must be absolute: Maven resolves relative paths against the pom's dir
    mkdir -p "$KAFKA_DIR"
    mvn -B -Dstyle.color=never -f "$JVM_POM" dependency:copy-dependencies \
        -DoutputDirectory="$JVM_LIB" -DincludeScope=runtime >"$KAFKA_DIR/mvn.log" 2>&1 ||
        die_with_logs "kafka: mvn dependency:copy-dependencies failed" "$KAFKA_DIR/mvn.log"
    compgen -G "$JVM_LIB/kafka_2.13-*.jar" >/dev/null || die "kafka: no kafka_2.13 jar in $JVM_LIB"
    kafka_lib_stamp >"$JVM_LIB/.complete"
}

kafka_running() { pid_matches "$(read_pid "$KAFKA_DIR/kafka.pid")" kafka.Kafka; }

kafka_metadata_ok() {
    "$VENV_PY" - "$HOST:$KAFKA_PORT" 2>/dev/null <<'EOF'
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=5)
sys.exit(0 if md.brokers else 1)
EOF
}

health_kafka() {
    port_open "$KAFKA_PORT" || return 1
    if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import confluent_kafka' 2>/dev/null; then
        kafka_metadata_ok
    else
        # no Python client yet (fresh checkout): port open plus the broker's own word
        grep -q 'Kafka Server started' "$KAFKA_DIR/kafka.log" 2>/dev/null
    fi
}

kafka_write_config() {
    mkdir -p "$KAFKA_DIR/data"
    cat >"$KAFKA_DIR/server.properties" <<EOF
# written by scripts/services.sh on every start -- edit the script, not this file
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=$KAFKA_AUTO_CREATE
delete.topic.enable=true
# retention by size only: rtml replays historical events with their event time as the
# record timestamp, and time-based retention would delete those at once
log.retention.ms=-1
log.retention.bytes=1073741824
log.segment.bytes=104857600
EOF
    cat >"$KAFKA_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $KAFKA_DIR/kafka.log
appender.file.filePattern = $KAFKA_DIR/kafka.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
}

kafka_java() {
    java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties" \
        "-Dkafka.logs.dir=$KAFKA_DIR" -cp "$JVM_LIB/*" "$@"
}

kafka_format() {
    [[ -f "$KAFKA_DIR/data/meta.properties" ]] && return 0
    local cid
    if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
        cid="$(cat "$KAFKA_DIR/cluster.id")"
    else
        cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/kafka.out" |
            tail -n 1)" || cid=""
        [[ -n "$cid" ]] || die_with_logs "kafka: StorageTool random-uuid failed" "$KAFKA_DIR/kafka.out"
        echo "$cid" >"$KAFKA_DIR/cluster.id"
    fi
    log "kafka: formatting storage (cluster id $cid)"
    kafka_java kafka.tools.StorageTool format --ignore-formatted \
        -t "$cid" -c "$KAFKA_DIR/server.properties" >>"$KAFKA_DIR/kafka.out" 2>&1 ||
        die_with_logs "kafka: StorageTool format failed" "$KAFKA_DIR/kafka.out"
}

start_kafka() {
    mkdir -p "$KAFKA_DIR"
    if kafka_running && health_kafka; then
        log "kafka: already running on $HOST:$KAFKA_PORT"
        return 0
    fi
    if ! kafka_running; then
        rm -f "$KAFKA_DIR/kafka.pid"
        port_free_or_die "$KAFKA_PORT" kafka
        port_free_or_die "$KAFKA_CONTROLLER_PORT" "kafka controller"
        kafka_write_config
        kafka_format
        log "kafka: starting Apache Kafka $(basename "$(compgen -G "$JVM_LIB/kafka_2.13-*.jar" | head -n 1)" .jar | sed 's/^kafka_2.13-//') on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
        # setsid: the broker outlives this shell and its process group
        # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_DIR/kafka.pid" \
            java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
            "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties" \
            "-Dkafka.logs.dir=$KAFKA_DIR" -cp "$JVM_LIB/*" \
            kafka.Kafka "$KAFKA_DIR/server.properties" \
            </dev/null >>"$KAFKA_DIR/kafka.out" 2>&1 9>&- &
        local i
        for ((i = 0; i < 50; i++)); do
            [[ -s "$KAFKA_DIR/kafka.pid" ]] && break
            sleep 0.1
        done
    fi
    local rc=0
    wait_for "$TIMEOUT" kafka_running health_kafka || rc=$?
    case "$rc" in
        0) log "kafka: up on $HOST:$KAFKA_PORT (pid $(read_pid "$KAFKA_DIR/kafka.pid"))" ;;
        2) die_with_logs "kafka: the broker exited during start-up" "$KAFKA_DIR/kafka.out" "$KAFKA_DIR/kafka.log" ;;
        *) die_with_logs "kafka: no metadata from $HOST:$KAFKA_PORT after ${TIMEOUT}s" "$KAFKA_DIR/kafka.out" "$KAFKA_DIR/kafka.log" ;;
    esac
}

stop_kafka() {
    if ! kafka_running; then
        rm -f "$KAFKA_DIR/kafka.pid"
        log "kafka: not running"
        return 0
    fi
    local pid i
    pid="$(read_pid "$KAFKA_DIR/kafka.pid")"
    log "kafka: stopping (controlled shutdown, pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        if ! pid_matches "$pid" kafka.Kafka; then
            rm -f "$KAFKA_DIR/kafka.pid"
            return 0
        fi
        sleep 1
    done
    log "kafka: did not stop in 60s, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$KAFKA_DIR/kafka.pid"
}

status_kafka() {
    if kafka_running && health_kafka; then
        echo "kafka     up    $HOST:$KAFKA_PORT  controller=$HOST:$KAFKA_CONTROLLER_PORT  data=$KAFKA_DIR/data  bootstrap=$HOST:$KAFKA_PORT"
    else
        echo "kafka     down  $HOST:$KAFKA_PORT  controller=$HOST:$KAFKA_CONTROLLER_PORT  data=$KAFKA_DIR/data"
        return 1
    fi
}

# ----------------------------------------------------------------------------- search
# osmem-server (PyPI): an in-memory, OpenSearch-compatible server, one static binary
# shipped in a wheel. For tests only: its data is lost when it stops.

# the Python whose site-packages hold osmem_server: the project venv, else our own venv
search_python() {
    if [[ -x "$VENV_PY" ]]; then echo "$VENV_PY"; else echo "$SEARCH_DIR/venv/bin/python"; fi
}

search_bin() {
    local py
    py="$(search_python)"
    [[ -x "$py" ]] || return 1
    "$py" -c 'import osmem_server; print(osmem_server.resolve_binary())' 2>/dev/null
}

install_search() {
    search_bin >/dev/null && return 0
    mkdir -p "$SEARCH_DIR"
    local py
    py="$(search_python)"
    if [[ ! -x "$py" ]]; then
        log "search: no $VENV_PY, making a venv for osmem-server in $SEARCH_DIR/venv"
        python3 -m venv "$SEARCH_DIR/venv" >>"$SEARCH_DIR/install.log" 2>&1 ||
            die_with_logs "search: python3 -m venv failed" "$SEARCH_DIR/install.log"
    fi
    log "search: installing $SEARCH_PACKAGE with $py (log: $SEARCH_DIR/install.log)"
    "$py" -m pip install -q "$SEARCH_PACKAGE" >>"$SEARCH_DIR/install.log" 2>&1 ||
        die_with_logs "search: pip install $SEARCH_PACKAGE failed" "$SEARCH_DIR/install.log"
    search_bin >/dev/null || die "search: osmem-server installed, but its binary is missing for this platform"
}

search_running() { pid_matches "$(read_pid "$SEARCH_DIR/osmem.pid")" osmem-server; }

# GET PATH on the search server, body on stdout
search_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 3 "http://$HOST:$SEARCH_PORT$1"
    else
        # shellcheck disable=SC2016  # the inner bash expands $1..$3
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3 &&
            cat <&3 | sed "1,/^\r\$/d"' _ "$HOST" "$SEARCH_PORT" "$1"
    fi
}

health_search() {
    search_get /_cluster/health 2>/dev/null | grep -Eq '"status" *: *"(green|yellow)"'
}

start_search() {
    mkdir -p "$SEARCH_DIR"
    if search_running && health_search; then
        log "search: already running on $HOST:$SEARCH_PORT"
        return 0
    fi
    if ! search_running; then
        rm -f "$SEARCH_DIR/osmem.pid"
        port_free_or_die "$SEARCH_PORT" search
        local bin
        bin="$(search_bin)" || die "search: osmem-server is not installed (run: $0 start search)"
        log "search: starting $("$bin" -version 2>/dev/null) on $HOST:$SEARCH_PORT (in memory)"
        # setsid: the server outlives this shell; --no-stdin-watch: it would exit when
        # its stdin closes (that is how osmem's pytest plugin stops it)
        # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$SEARCH_DIR/osmem.pid" \
            "$bin" --addr "$HOST:$SEARCH_PORT" --no-stdin-watch --no-ja \
            </dev/null >>"$SEARCH_DIR/osmem.log" 2>&1 9>&- &
        local i
        for ((i = 0; i < 50; i++)); do
            [[ -s "$SEARCH_DIR/osmem.pid" ]] && break
            sleep 0.1
        done
    fi
    local rc=0
    wait_for "$TIMEOUT" search_running health_search || rc=$?
    case "$rc" in
        0) log "search: up on $HOST:$SEARCH_PORT (pid $(read_pid "$SEARCH_DIR/osmem.pid"))" ;;
        2) die_with_logs "search: osmem-server exited during start-up" "$SEARCH_DIR/osmem.log" ;;
        *) die_with_logs "search: no healthy /_cluster/health on $HOST:$SEARCH_PORT after ${TIMEOUT}s" "$SEARCH_DIR/osmem.log" ;;
    esac
}

stop_search() {
    if ! search_running; then
        rm -f "$SEARCH_DIR/osmem.pid"
        log "search: not running"
        return 0
    fi
    local pid i
    pid="$(read_pid "$SEARCH_DIR/osmem.pid")"
    log "search: stopping (pid $pid; its in-memory data is dropped)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        if ! pid_matches "$pid" osmem-server; then
            rm -f "$SEARCH_DIR/osmem.pid"
            return 0
        fi
        sleep 1
    done
    log "search: did not stop in 30s, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$SEARCH_DIR/osmem.pid"
}

status_search() {
    if search_running && health_search; then
        echo "search    up    $HOST:$SEARCH_PORT  osmem-server (in memory)  log=$SEARCH_DIR/osmem.log  url=http://$HOST:$SEARCH_PORT"
    else
        echo "search    down  $HOST:$SEARCH_PORT  osmem-server (in memory)  log=$SEARCH_DIR/osmem.log"
        return 1
    fi
}

# ----------------------------------------------------------------------------- mlflow
# The MLflow tracking server (the project's venv, else a venv of its own) on PostgreSQL:
# runs and the model registry in the database `mlflow`, artifacts served by the server
# itself (--serve-artifacts) from $MLFLOW_DIR/artifacts.

mlflow_bin() {
    local venv_bin
    venv_bin="$(dirname "$VENV_PY")/mlflow"
    if [[ -x "$venv_bin" ]] && "$(dirname "$VENV_PY")/python" -c 'import psycopg' 2>/dev/null; then
        echo "$venv_bin"
    else
        echo "$MLFLOW_DIR/venv/bin/mlflow"
    fi
}

install_mlflow() {
    [[ -x "$(mlflow_bin)" ]] && return 0
    mkdir -p "$MLFLOW_DIR"
    log "mlflow: installing ${MLFLOW_PACKAGES[*]} into $MLFLOW_DIR/venv (log: $MLFLOW_DIR/install.log)"
    python3 -m venv "$MLFLOW_DIR/venv" >>"$MLFLOW_DIR/install.log" 2>&1 ||
        die_with_logs "mlflow: python3 -m venv failed" "$MLFLOW_DIR/install.log"
    "$MLFLOW_DIR/venv/bin/python" -m pip install -q "${MLFLOW_PACKAGES[@]}" >>"$MLFLOW_DIR/install.log" 2>&1 ||
        die_with_logs "mlflow: pip install failed" "$MLFLOW_DIR/install.log"
}

mlflow_running() { pid_matches "$(read_pid "$MLFLOW_DIR/mlflow.pid")" mlflow; }

health_mlflow() {
    [[ "$(curl -fsS --max-time 3 "http://$HOST:$MLFLOW_PORT/health" 2>/dev/null)" == OK ]]
}

start_mlflow() {
    mkdir -p "$MLFLOW_DIR/artifacts"
    if mlflow_running && health_mlflow; then
        log "mlflow: already running on $HOST:$MLFLOW_PORT"
        return 0
    fi
    pg_running && health_postgres || die "mlflow: needs postgres; run: $0 start postgres mlflow"
    if [[ "$(pg_admin_psql -c "SELECT 1 FROM pg_database WHERE datname = '$MLFLOW_DB'")" != 1 ]]; then
        pg_admin_psql -c "CREATE DATABASE $MLFLOW_DB OWNER $PG_USER" >/dev/null
    fi
    if ! mlflow_running; then
        rm -f "$MLFLOW_DIR/mlflow.pid"
        port_free_or_die "$MLFLOW_PORT" mlflow
        log "mlflow: starting the tracking server on $HOST:$MLFLOW_PORT (store: postgres db $MLFLOW_DB)"
        # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
        # MLflow's background job runner (huey workers for GenAI jobs) is not used by rtml
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
            setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$MLFLOW_DIR/mlflow.pid" \
            "$(mlflow_bin)" server --host "$HOST" --port "$MLFLOW_PORT" --workers 1 \
            --backend-store-uri "postgresql+psycopg://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$MLFLOW_DB" \
            --serve-artifacts --artifacts-destination "$MLFLOW_DIR/artifacts" \
            </dev/null >>"$MLFLOW_DIR/mlflow.log" 2>&1 9>&- &
        local i
        for ((i = 0; i < 50; i++)); do
            [[ -s "$MLFLOW_DIR/mlflow.pid" ]] && break
            sleep 0.1
        done
    fi
    local rc=0
    wait_for "$TIMEOUT" mlflow_running health_mlflow || rc=$?
    case "$rc" in
        0) log "mlflow: up on $HOST:$MLFLOW_PORT (pid $(read_pid "$MLFLOW_DIR/mlflow.pid"))" ;;
        2) die_with_logs "mlflow: the server exited during start-up" "$MLFLOW_DIR/mlflow.log" ;;
        *) die_with_logs "mlflow: no healthy /health on $HOST:$MLFLOW_PORT after ${TIMEOUT}s" "$MLFLOW_DIR/mlflow.log" ;;
    esac
}

stop_mlflow() {
    if ! mlflow_running; then
        rm -f "$MLFLOW_DIR/mlflow.pid"
        log "mlflow: not running"
        return 0
    fi
    local pid i
    pid="$(read_pid "$MLFLOW_DIR/mlflow.pid")"
    log "mlflow: stopping (pid $pid)"
    # the server runs its workers as children: stop the whole process group
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        if ! pid_matches "$pid" mlflow; then
            rm -f "$MLFLOW_DIR/mlflow.pid"
            return 0
        fi
        sleep 1
    done
    log "mlflow: did not stop in 30s, killing pid $pid"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$MLFLOW_DIR/mlflow.pid"
}

status_mlflow() {
    if mlflow_running && health_mlflow; then
        echo "mlflow    up    $HOST:$MLFLOW_PORT  store=postgres/$MLFLOW_DB  log=$MLFLOW_DIR/mlflow.log  url=http://$HOST:$MLFLOW_PORT"
    else
        echo "mlflow    down  $HOST:$MLFLOW_PORT  log=$MLFLOW_DIR/mlflow.log"
        return 1
    fi
}

# ------------------------------------------------------------------------------ nginx
# NGINX (Debian package) as the gateway in front of `rtml serve`, configured by
# `rtml gateway` (upstream keep-alive, timeouts, body limits, the API-key check).
# Its files (config, pid, logs, temp) all live under $NGINX_DIR.

install_nginx() {
    [[ -x "$(nginx_bin)" ]] && return 0
    log "nginx: not found, installing the Debian package"
    apt_install nginx
}

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

nginx_running() { pid_matches "$(read_pid "$NGINX_DIR/run/nginx.pid")" nginx; }

health_nginx() {
    # any HTTP answer: 502 means NGINX is up and the server behind it is not (yet)
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$HOST:$GATEWAY_PORT/health" 2>/dev/null)"
    [[ -n "$code" && "$code" != 000 ]]
}

nginx_api_key() {
    if [[ -n "${RTML_API_KEY:-}" ]]; then
        echo "$RTML_API_KEY"
        return
    fi
    if [[ ! -s "$NGINX_DIR/api_key" ]]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$NGINX_DIR/api_key")
    fi
    cat "$NGINX_DIR/api_key"
}

start_nginx() {
    mkdir -p "$NGINX_DIR/run"
    if nginx_running && health_nginx; then
        log "nginx: already running on $HOST:$GATEWAY_PORT"
        return 0
    fi
    local rtml_bin
    rtml_bin="$(dirname "$VENV_PY")/rtml"
    [[ -x "$rtml_bin" ]] || die "nginx: needs rtml installed in $(dirname "$(dirname "$VENV_PY")") (make test does it) to write its configuration"
    if ! nginx_running; then
        port_free_or_die "$GATEWAY_PORT" nginx
        RTML_API_KEY="$(nginx_api_key)" "$rtml_bin" gateway --project "$GATEWAY_PROJECT" \
            --out "$NGINX_DIR/nginx.conf" --run-dir "$NGINX_DIR/run" \
            --upstream "$HOST:$SERVER_PORT" --listen "$HOST:$GATEWAY_PORT" --workers 1 \
            >>"$NGINX_DIR/gateway.log" 2>&1 || die_with_logs "nginx: rtml gateway failed" "$NGINX_DIR/gateway.log"
        log "nginx: starting on $HOST:$GATEWAY_PORT -> rtml serve on $HOST:$SERVER_PORT"
        "$(nginx_bin)" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/run/startup.log" 9>&- ||
            die_with_logs "nginx: failed to start" "$NGINX_DIR/run/startup.log" "$NGINX_DIR/run/error.log"
    fi
    wait_for "$TIMEOUT" nginx_running health_nginx ||
        die_with_logs "nginx: no answer on $HOST:$GATEWAY_PORT" "$NGINX_DIR/run/startup.log" "$NGINX_DIR/run/error.log"
    log "nginx: up on $HOST:$GATEWAY_PORT (pid $(read_pid "$NGINX_DIR/run/nginx.pid"); API key in $NGINX_DIR/api_key)"
}

stop_nginx() {
    if ! nginx_running; then
        log "nginx: not running"
        return 0
    fi
    local pid i
    pid="$(read_pid "$NGINX_DIR/run/nginx.pid")"
    log "nginx: stopping (pid $pid)"
    "$(nginx_bin)" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/run/startup.log" -s quit 2>/dev/null ||
        kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        pid_matches "$pid" nginx || return 0
        sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

status_nginx() {
    if nginx_running && health_nginx; then
        echo "nginx     up    $HOST:$GATEWAY_PORT  -> $HOST:$SERVER_PORT  conf=$NGINX_DIR/nginx.conf  url=http://$HOST:$GATEWAY_PORT"
    else
        echo "nginx     down  $HOST:$GATEWAY_PORT  conf=$NGINX_DIR/nginx.conf"
        return 1
    fi
}

# ------------------------------------------------------------------------------- main

usage() {
    echo "usage: $0 start|stop|restart|status [${SERVICES[*]}]" >&2
    exit 2
}

resolve_services() {
    local s known out=()
    if (($# == 0)); then
        printf '%s\n' "${SERVICES[@]}"
        return
    fi
    for s in "$@"; do
        case "$s" in
            postgresql | pg) s=postgres ;;
            opensearch | osmem) s=search ;;
        esac
        for known in "${SERVICES[@]}"; do
            if [[ "$s" == "$known" ]]; then
                out+=("$s")
                continue 2
            fi
        done
        die "unknown service '$s' (known: ${SERVICES[*]})"
    done
    printf '%s\n' "${out[@]}"
}

main() {
    (($# >= 1)) || usage
    local cmd="$1" s
    shift
    local -a targets
    mapfile -t targets < <(resolve_services "$@")
    ((${#targets[@]})) || exit 2

    # one invocation at a time per services dir (several people share one machine);
    # every server is started with 9>&- so that none of them inherits the lock
    exec 9>"$SERVICES_DIR/.lock"
    if ! flock -w 600 9; then die "another services.sh holds $SERVICES_DIR/.lock"; fi

    case "$cmd" in
        start)
            local t0=$SECONDS
            for s in "${targets[@]}"; do
                "install_$s"
                "start_$s"
            done
            log "all up in $((SECONDS - t0))s: ${targets[*]}"
            ;;
        stop)
            local i
            for ((i = ${#targets[@]} - 1; i >= 0; i--)); do "stop_${targets[i]}"; done
            ;;
        restart)
            local i
            for ((i = ${#targets[@]} - 1; i >= 0; i--)); do "stop_${targets[i]}"; done
            for s in "${targets[@]}"; do
                "install_$s"
                "start_$s"
            done
            ;;
        status)
            local down=0
            for s in "${targets[@]}"; do "status_$s" || down=1; done
            ((down == 0)) || exit 3
            ;;
        *) usage ;;
    esac
}

main "$@"
