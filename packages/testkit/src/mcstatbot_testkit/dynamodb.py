"""DynamoDB Local (the official jar) as a real peer for the tests.

`scripts/install-test-deps.sh` puts the jar in `.tools/dynamodb-local/`. `DynamoDBLocal` starts it on a
free loopback port (`java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory
-disableTelemetry -port N`, working directory the jar's folder) and stops it for sure::

    with DynamoDBLocal(tmp_path / "dynamodb.log") as ddb:
        env = ddb.env()            # AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION and dummy credentials
        ...
        ddb.stop()                 # an outage: connections are refused
        ddb.start()                # back on the SAME port (in-memory data is gone; use persistent=True
                                   # with a db_dir to keep tables across a restart)
        ddb.pause(); ddb.resume()  # SIGSTOP/SIGCONT: a hung DynamoDB (connections hang, no refusal)

`env()` gives the AWS SDKs' variables, which the services' DynamoDB store reads (`mcstatbot_bot.state.aws`)
as the tests' own AWS SDK client does, so a service started with them talks to this instance;
`apply_env(monkeypatch)` sets them for in-process code.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

from mcstatbot_testkit.net import LOOPBACK, free_port, wait_for_tcp
from mcstatbot_testkit.process import ManagedProcess, Started

if TYPE_CHECKING:
    import pytest

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_JAR_DIR = REPO_ROOT / ".tools" / "dynamodb-local"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # DynamoDB Local accepts any credentials
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class DynamoDBUnavailableError(RuntimeError):
    """java or the DynamoDB Local jar is missing (run `make test-deps`)."""


class DynamoDBLocal(Started):
    """One DynamoDB Local process on a fixed free port; start/stop/restart keep the port."""

    def __init__(
        self,
        log_path: Path,
        *,
        jar_dir: Path | None = None,
        port: int = 0,
        persistent: bool = False,
        db_dir: Path | None = None,
    ) -> None:
        self.jar_dir = jar_dir or Path(os.environ.get("DYNAMODB_LOCAL_DIR", DEFAULT_JAR_DIR))
        if not (self.jar_dir / "DynamoDBLocal.jar").exists():
            raise DynamoDBUnavailableError(f"no DynamoDBLocal.jar in {self.jar_dir}; run `make test-deps`")
        java = shutil.which("java")
        if java is None:
            raise DynamoDBUnavailableError("java is not installed; run `make test-deps`")
        self.port = port or free_port()
        storage = ["-inMemory"]
        if persistent:
            directory = db_dir or log_path.parent / f"dynamodb-data-{self.port}"
            directory.mkdir(parents=True, exist_ok=True)
            storage = ["-dbPath", str(directory), "-sharedDb"]
        argv = [
            java,
            "-Djava.library.path=./DynamoDBLocal_lib",
            "-jar",
            "DynamoDBLocal.jar",
            *storage,
            "-disableTelemetry",
            "-port",
            str(self.port),
        ]
        self.process = ManagedProcess(argv, log_path, cwd=self.jar_dir)
        self._paused = False

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """The AWS SDKs' variables pointing at this instance, with dummy credentials and a region."""
        return {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url}

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)

    def start(self, timeout: float = 30.0) -> Self:
        self.process.start()
        deadline = time.monotonic() + timeout
        while True:
            if not self.process.running:
                raise RuntimeError(f"DynamoDB Local exited early:\n{self.process.log_text()[-3000:]}")
            try:
                wait_for_tcp(self.port, timeout=0.5)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
            else:
                return self

    def stop(self) -> None:
        if self._paused:
            self.resume()
        self.process.stop(timeout=10)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): requests hang instead of being refused."""
        self.process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self._paused = False

    @property
    def running(self) -> bool:
        return self.process.running
