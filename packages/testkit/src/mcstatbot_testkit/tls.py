"""Certificates for TLS peers on loopback: a test CA and a server certificate it signed for 127.0.0.1.

Made by the openssl command-line tool (part of Debian's base system), so the testkit needs no
cryptography package. `TestCertificates.make(directory)` writes `ca.crt` (the CA a client trusts),
`server.crt` and `server.key` (what the server presents; also its client certificate on a Redis
Cluster's TLS bus). Another call makes another CA: a client that trusts one does not trust the other's
server (the "untrusted CA" case).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcstatbot_testkit.net import LOOPBACK

if TYPE_CHECKING:
    from pathlib import Path


def openssl_binary() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise RuntimeError("openssl is not installed (Debian's base system has it: apt-get install openssl)")
    return found


def _openssl(*args: str) -> None:
    subprocess.run(  # noqa: S603 - argv built here from fixed parts and the test's own paths
        [openssl_binary(), *args], check=True, capture_output=True, timeout=60
    )


@dataclass(frozen=True, slots=True)
class TestCertificates:
    """A CA and a server certificate (subjectAltName IP:127.0.0.1) signed by it, valid for a day."""

    __test__ = False  # not a pytest test class, despite the name

    ca: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def make(cls, directory: Path, name: str = "mcstatbot test CA") -> TestCertificates:
        directory.mkdir(parents=True, exist_ok=True)
        ca, ca_key = directory / "ca.crt", directory / "ca.key"
        cert, key, request = directory / "server.crt", directory / "server.key", directory / "server.csr"
        extensions = directory / "server.ext"
        extensions.write_text(
            f"subjectAltName = IP:{LOOPBACK}\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth, clientAuth\n"
        )
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(ca_key),
            "-out", str(ca), "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request),
            "-subj", f"/CN={LOOPBACK}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-out", str(cert), "-extfile", str(extensions),
        )  # fmt: skip
        return cls(ca=ca, server_cert=cert, server_key=key)

    def redis_server_options(self, *, cluster: bool = False) -> list[str]:
        """redis-server's TLS options for these files (clients need no certificate of their own, as on
        ElastiCache); `cluster`: the cluster bus and replication speak TLS too."""
        options = [
            "--tls-cert-file", str(self.server_cert),
            "--tls-key-file", str(self.server_key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip
        if cluster:
            options += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        return options

    def redis_cli_options(self) -> list[str]:
        return ["--tls", "--cacert", str(self.ca)]
