#!/usr/bin/env bash
# scripts/kafka.sh - a real, single-node Apache Kafka (KRaft, broker and
# controller in one JVM) on 127.0.0.1 for the integration tests.
#
#   scripts/kafka.sh fetch  [--cache DIR]
#   scripts/kafka.sh start  [--dir DIR] [--port PORT] [--cache DIR] [--timeout S]
#   scripts/kafka.sh stop   [--dir DIR]
#   scripts/kafka.sh status [--dir DIR]
#
# fetch   resolves the Kafka jars (scripts/kafka/pom.xml) from Maven Central
#         with mvn into the cache directory and writes their classpath. A
#         second fetch is a no-op.
# start   fetches if needed, formats a fresh KRaft storage directory in the
#         state directory, starts the broker in the background, waits until it
#         answers metadata requests, creates the lunamatch topics and prints
#         the bootstrap address (127.0.0.1:PORT) as the last line on stdout.
#         Starting a broker that already runs from DIR only prints its address.
# stop    stops the broker (SIGTERM, then SIGKILL after a bounded wait) and
#         removes the state directory.
# status  prints "running PID ADDRESS" (exit 0) or "stopped" (exit 3).
#
# Defaults: --dir build/kafka (in the source tree), --port 19092 (the
# controller listens on PORT+1), --cache
# ${XDG_CACHE_HOME:-$HOME/.cache}/lunamatch/kafka-VERSION, --timeout 90.
# Topic names and partitions follow the services' variables:
# LUNAMATCH_TOPIC_POSTINGS/_PROFILES/_MATCHES/_DLQ, LUNAMATCH_PARTITIONS (3).
# KAFKA_HEAP_OPTS overrides the heap (default -Xms128m -Xmx512m).
#
# Non-interactive: reads no stdin, needs only java (17), mvn, kcat and access
# to Maven Central (for the first fetch).
set -euo pipefail

KAFKA_VERSION=3.7.2   # keep in step with kafka.version in scripts/kafka/pom.xml
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
POM="$SRC_DIR/scripts/kafka/pom.xml"
MARKER=.lunamatch-kafka        # marks a state directory that this script owns

prog=kafka.sh
die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# ---- arguments ------------------------------------------------------------
[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd=$1; shift
state_dir="$SRC_DIR/build/kafka"
port=19092
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/lunamatch/kafka-$KAFKA_VERSION"
timeout_s=90
while [ $# -gt 0 ]; do
	case $1 in
	--dir) [ $# -ge 2 ] || die "--dir needs a value"; state_dir=$2; shift 2 ;;
	--port) [ $# -ge 2 ] || die "--port needs a value"; port=$2; shift 2 ;;
	--cache) [ $# -ge 2 ] || die "--cache needs a value"; cache_dir=$2; shift 2 ;;
	--timeout) [ $# -ge 2 ] || die "--timeout needs a value"; timeout_s=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
case $port in ''|*[!0-9]*) die "--port: \"$port\" is not a number" ;; esac
[ "$port" -ge 1024 ] && [ "$port" -le 65534 ] || die "--port: $port is outside 1024..65534"
case $timeout_s in ''|*[!0-9]*) die "--timeout: \"$timeout_s\" is not a number" ;; esac
[ -n "$state_dir" ] && [ "$state_dir" != / ] || die "--dir: refusing \"$state_dir\""
controller_port=$((port + 1))
case $state_dir in /*) ;; *) state_dir="$PWD/$state_dir" ;; esac
pid_file="$state_dir/kafka.pid"
addr_file="$state_dir/bootstrap"
bootstrap="127.0.0.1:$port"

topics=(
	"${LUNAMATCH_TOPIC_POSTINGS:-lunamatch.postings.v1}"
	"${LUNAMATCH_TOPIC_PROFILES:-lunamatch.profiles.v1}"
	"${LUNAMATCH_TOPIC_MATCHES:-lunamatch.matches.v1}"
	"${LUNAMATCH_TOPIC_DECISIONS:-lunamatch.decisions.v1}"
	"${LUNAMATCH_TOPIC_DLQ:-lunamatch.ingest.dlq.v1}"
)
partitions=${LUNAMATCH_PARTITIONS:-3}
case $partitions in ''|*[!0-9]*|0) die "LUNAMATCH_PARTITIONS: \"$partitions\" is not a positive number" ;; esac

# ---- helpers --------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (scripts/install-deps.sh installs it)"; }

# The pid in the pid file, if that process is alive and is our broker.
running_pid() {
	local pid
	[ -f "$pid_file" ] || return 1
	pid=$(cat "$pid_file" 2>/dev/null) || return 1
	case $pid in ''|*[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: the command line names our config file.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state_dir/server.properties" || return 1
	echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

classpath() { cat "$cache_dir/classpath"; }

jvm() {
	# shellcheck disable=SC2086
	java ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1 -Djava.awt.headless=true "$@"
}

# ---- fetch ----------------------------------------------------------------
do_fetch() {
	local lock tmp
	if [ -f "$cache_dir/.complete" ]; then
		return 0
	fi
	need mvn
	need java
	mkdir -p "$cache_dir"
	lock="$cache_dir/.lock"
	exec 9>"$lock"
	flock -w 600 9 || die "another fetch holds $lock"
	if [ -f "$cache_dir/.complete" ]; then   # fetched while we waited
		exec 9>&-
		return 0
	fi
	note "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $cache_dir"
	tmp="$cache_dir/libs.tmp"
	rm -rf "$tmp"
	mvn -B -q -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
		dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime \
		</dev/null >"$cache_dir/fetch.log" 2>&1 || {
		tail -n 30 "$cache_dir/fetch.log" >&2
		die "mvn could not resolve the Kafka jars (is Maven Central reachable?)"
	}
	[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "mvn did not deliver kafka_2.13-$KAFKA_VERSION.jar"
	rm -rf "$cache_dir/libs"
	mv "$tmp" "$cache_dir/libs"
	find "$cache_dir/libs" -name '*.jar' | sort | paste -sd: >"$cache_dir/classpath"
	echo "$KAFKA_VERSION" >"$cache_dir/.complete"
	exec 9>&-
	note "fetched $(find "$cache_dir/libs" -name '*.jar' | wc -l) jars"
}

# ---- start ----------------------------------------------------------------
write_config() {
	cat >"$state_dir/server.properties" <<EOF
# Written by scripts/kafka.sh: single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$state_dir/data
# Topics are created explicitly (below), like in production.
auto.create.topics.enable=false
num.partitions=$partitions
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# Small: two cores are shared with the build.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
	cat >"$state_dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$state_dir/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
	cat >"$state_dir/tools-log4j.properties" <<EOF
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# A random KRaft cluster id: 16 bytes, URL-safe base64 without padding. It
# may start with "-", so it is passed as --cluster-id=ID, never as a separate
# argument.
cluster_id() {
	head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

broker_answers() {
	# A metadata answer that lists our broker: the broker is registered and
	# unfenced, so producers and the admin client can use it.
	kcat -b "$bootstrap" -L -m 3 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$port"
}

create_topics() {
	local t
	for t in "${topics[@]}"; do
		jvm -Dlog4j.configuration="file:$state_dir/tools-log4j.properties" \
			-cp "$(classpath)" org.apache.kafka.tools.TopicCommand \
			--bootstrap-server "$bootstrap" --create --if-not-exists \
			--topic "$t" --partitions "$partitions" --replication-factor 1 \
			</dev/null >>"$state_dir/logs/topics.log" 2>&1 \
			|| { tail -n 20 "$state_dir/logs/topics.log" >&2; return 1; }
	done
}

do_start() {
	local pid deadline t0
	t0=$(date +%s)
	need java
	need kcat
	if pid=$(running_pid); then
		note "already running (pid $pid)"
		cat "$addr_file" 2>/dev/null || echo "$bootstrap"
		return 0
	fi
	port_busy "$port" && die "port $port on 127.0.0.1 is in use (choose another with --port)"
	port_busy "$controller_port" && die "port $controller_port on 127.0.0.1 is in use (choose another with --port)"
	do_fetch

	if [ -e "$state_dir" ]; then
		[ -f "$state_dir/$MARKER" ] || [ -z "$(ls -A "$state_dir" 2>/dev/null)" ] \
			|| die "$state_dir exists and was not made by this script; not touching it"
		rm -rf "$state_dir"
	fi
	mkdir -p "$state_dir/logs" "$state_dir/data"
	: >"$state_dir/$MARKER"
	write_config

	jvm -cp "$(classpath)" -Dlog4j.configuration="file:$state_dir/tools-log4j.properties" \
		kafka.tools.StorageTool format --cluster-id="$(cluster_id)" -c "$state_dir/server.properties" \
		</dev/null >"$state_dir/logs/format.log" 2>&1 \
		|| { cat "$state_dir/logs/format.log" >&2; die "formatting the KRaft storage failed"; }

	# setsid: the broker outlives this script and the test that runs it; all
	# three standard streams are redirected so that nobody waits on a pipe.
	setsid java ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
		-Dkafka.logs.dir="$state_dir/logs" \
		-Dlog4j.configuration="file:$state_dir/log4j.properties" \
		-cp "$(classpath)" kafka.Kafka "$state_dir/server.properties" \
		</dev/null >"$state_dir/logs/stdout.log" 2>&1 &
	pid=$!
	echo "$pid" >"$pid_file"

	deadline=$(($(date +%s) + timeout_s))
	until broker_answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$state_dir/logs/server.log" "$state_dir/logs/stdout.log" >&2 || true
			die "the broker exited during start-up (logs in $state_dir/logs)"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tail -n 30 "$state_dir/logs/server.log" >&2 || true
			do_stop keep
			die "the broker did not answer within ${timeout_s}s (logs in $state_dir/logs)"
		fi
		sleep 0.5
	done
	if ! create_topics; then
		do_stop keep
		die "creating the topics failed"
	fi
	echo "$bootstrap" >"$addr_file"
	note "Apache Kafka $KAFKA_VERSION up in $(($(date +%s) - t0))s (pid $pid, logs in $state_dir/logs)"
	echo "$bootstrap"
}

# ---- stop -----------------------------------------------------------------
# do_stop [keep]: stops the broker; removes the state directory unless "keep".
do_stop() {
	local pid i
	if pid=$(running_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do   # 30 s
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			note "pid $pid ignored SIGTERM for 30s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
		note "stopped (pid $pid)"
	fi
	rm -f "$pid_file"
	if [ "${1:-}" != keep ] && [ -f "$state_dir/$MARKER" ]; then
		rm -rf "$state_dir"
	fi
}

do_status() {
	local pid
	if pid=$(running_pid); then
		echo "running $pid $(cat "$addr_file" 2>/dev/null || echo "$bootstrap")"
		return 0
	fi
	echo "stopped"
	return 3
}

case $cmd in
fetch) do_fetch; note "classpath in $cache_dir/classpath" ;;
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
-h|--help|help) usage ;;
*) usage >&2; exit 2 ;;
esac
