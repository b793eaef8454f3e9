"""A real single-node Apache Kafka (KRaft, combined broker+controller) from Maven Central jars."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack._proc import (
    LOOPBACK,
    ServerProcess,
    StartupError,
    cache_dir,
    free_port,
    port_open,
    spawn,
    wait_until,
)

KAFKA_VERSION = "3.9.2"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
RELOAD4J_VERSION = "1.2.25"

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.devstack</groupId><artifactId>kafka-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
    <!-- kafka_2.13's POM has no logging backend (core declares reload4j compileOnly) -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
      <version>{SLF4J_VERSION}</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId>
      <version>{RELOAD4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""

_JVM_FLAGS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


def kafka_home(cache: Path | None = None) -> Path:
    """Directory holding ``pom.xml`` and ``libs/`` for the pinned Kafka version."""
    return (cache or cache_dir()) / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars(cache: Path | None = None, *, quiet: bool = False) -> Path:
    """Download Kafka and its runtime dependencies with Maven (once); return the ``libs`` dir.

    Maven uses a private local repository under the cache, so ``~/.m2`` is left alone.
    A ``.complete`` stamp marks a finished download; a half-done one is redone.
    """
    home = kafka_home(cache)
    libs = home / "libs"
    stamp = libs / ".complete"
    if stamp.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM)
    partial = home / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    if not quiet:
        print(f"devstack: fetching Kafka {KAFKA_VERSION} jars with Maven into {libs}", flush=True)
    started = time.monotonic()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(
            "mvn not found: run setup (apt-get install -y maven openjdk-17-jre-headless)"
        )
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            f"-Dmaven.repo.local={home.parent / 'maven-repo'}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        cwd=home,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"mvn failed ({proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        )
    (partial / ".complete").write_text(KAFKA_VERSION + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    if not quiet:
        jars = len(list(libs.glob("*.jar")))
        print(f"devstack: {jars} jars in {time.monotonic() - started:.1f} s", flush=True)
    return libs


def random_cluster_id() -> str:
    """A Kafka cluster id, like ``kafka-storage.sh random-uuid`` (base64url, 16 bytes, no pad)."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaBroker(ServerProcess):
    """A single-node KRaft Kafka broker on loopback, run with ``java ... kafka.Kafka``.

    ``base_dir`` receives ``server.properties``, ``log4j.properties``, ``kafka.log`` and the
    ``data/`` log dir. The storage is formatted once; :meth:`restart` keeps dirs and ports.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        libs: Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        start_timeout: float = 90.0,
        standalone_format: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.libs = libs
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.start_timeout = start_timeout
        self.standalone_format = standalone_format
        self.log_path = self.base_dir / "kafka.log"
        self.data_dir = self.base_dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None
        self._launched_at = 0.0

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` value, ``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self.port}"

    def launch(self) -> None:
        """Write config, format storage if needed and spawn the JVM (does not wait)."""
        if self.pid is not None:
            return
        if self.libs is None:
            self.libs = ensure_kafka_jars()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format()
        self._launched_at = time.monotonic()
        self.proc = spawn(
            [*self._java(), "kafka.Kafka", str(self.base_dir / "server.properties")],
            log=self.log_path,
            cwd=self.base_dir,
        )

    def wait_ready(self) -> float:
        """Poll ``AdminClient.list_topics`` until a broker is listed; return seconds since spawn."""
        if self.proc is None:
            raise StartupError("Kafka broker was not launched")
        admin = None

        def ready() -> bool:
            nonlocal admin
            if not port_open(self.port):
                return False
            if admin is None:
                from confluent_kafka.admin import AdminClient

                admin = AdminClient(
                    {
                        "bootstrap.servers": self.bootstrap,
                        "log_level": 0,
                        "reconnect.backoff.max.ms": 500,
                    }
                )
            try:
                return len(admin.list_topics(timeout=2).brokers) > 0
            except Exception:  # KafkaException while the broker boots
                return False

        wait_until(
            ready,
            what=f"Kafka broker on {self.bootstrap}",
            timeout=self.start_timeout,
            proc=self.proc,
            log=self.log_path,
        )
        self.ready_seconds = time.monotonic() - self._launched_at
        return self.ready_seconds

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError(
                "java not found: run setup (apt-get install -y openjdk-17-jre-headless)"
            )
        return [
            java,
            *_JVM_FLAGS,
            f"-Dlog4j.configuration=file:{self.base_dir / 'log4j.properties'}",
            "-cp",
            f"{self.libs}/*",
        ]

    def _write_config(self) -> None:
        (self.base_dir / "log4j.properties").write_text(_LOG4J)
        (self.base_dir / "server.properties").write_text(self.server_properties())

    def server_properties(self) -> str:
        """The broker configuration: combined KRaft mode, loopback listeners, RF 1 everywhere."""
        ctl = f"{LOOPBACK}:{self.controller_port}"
        quorum = (
            f"controller.quorum.bootstrap.servers={ctl}"
            if self.standalone_format
            else f"controller.quorum.voters=1@{ctl}"
        )
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            quorum,
            f"listeners=PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{ctl}",
            f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{ctl}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # a killed broker re-registers only after its old session expires (default 9 s)
            "broker.session.timeout.ms=4000",
            "broker.heartbeat.interval.ms=1000",
            "num.network.threads=2",
            "num.io.threads=2",
            "num.recovery.threads.per.data.dir=1",
            "log.retention.check.interval.ms=300000",
        ]
        return "\n".join(lines) + "\n"

    def _format(self) -> None:
        """Format ``log.dirs``: ``--standalone`` (dynamic quorum), else static voters."""
        proc = self._run_format()
        if proc.returncode != 0 and self.standalone_format:
            self.standalone_format = False
            self._write_config()
            proc = self._run_format()
        if proc.returncode != 0:
            raise StartupError(f"kafka StorageTool format failed:\n{proc.stdout}{proc.stderr}")

    def _run_format(self) -> subprocess.CompletedProcess[str]:
        argv = [*self._java(), "kafka.tools.StorageTool", "format", "-t", random_cluster_id()]
        argv += ["-c", str(self.base_dir / "server.properties")]
        if self.standalone_format:
            argv.append("--standalone")
        return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=self.base_dir)


def main() -> None:
    """``python -m devstack.kafka [DIR]``: run one broker until Ctrl-C (debug helper)."""
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("kafka-dev")
    with KafkaBroker(base) as broker:
        print(broker.bootstrap, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
