"""A throwaway PostgreSQL cluster in a temporary directory on its own port, which a test may stop and start.

The machine's shared server is never restarted: a test that needs a full restart makes its own
cluster with the server binaries (initdb refuses root, so as root it runs them as the `postgres`
system user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.server.replica_kit import free_port

BIN_DIRS: Final = tuple(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
SECONDS: Final = 60


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, if any."""
    for candidate in BIN_DIRS:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


@dataclass
class Cluster:
    """A running throwaway cluster: trust auth on 127.0.0.1 only."""

    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.data_dir / "server.log"), "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, as when an operator restarts the server."""
        self._ctl("-m", "fast", "-w", "stop")

    def _ctl(self, *args: str) -> None:
        _run_as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args])


def _run_as_owner(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=SECONDS)


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A fresh cluster, started; stopped and deleted afterwards."""
    bin_dir = server_binaries()
    assert bin_dir is not None
    # Not under pytest's root-only tmp directory: the server's user must reach its data directory.
    base = Path(tempfile.mkdtemp(prefix="outboundcalls-pg-"))
    data_dir = base / "data"
    try:
        data_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
            shutil.chown(data_dir, "postgres")
        _run_as_owner([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        cluster = Cluster(bin_dir, data_dir, free_port())
        cluster.start()
        try:
            yield cluster
        finally:
            try:
                cluster.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped by the test
    finally:
        shutil.rmtree(base, ignore_errors=True)
