"""A private CA and a TLS front door (nginx) in front of a Temporal dev server.

The front door stands in for a cluster's own: Temporal Cloud's, or the load
balancer in front of a self-hosted cluster. It ends TLS with a certificate
from a CA made here, asks for one credential (an API key, or a client
certificate: the two shapes of deploy/tls/), refuses anything else with a
gRPC ``UNAUTHENTICATED`` answer, and passes the rest to the dev server. nginx
runs as an OS process on a free loopback port (``make test`` installs it).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from testkit.devserver import free_port
from testkit.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "deploy" / "tls"
# api-key: every call needs the key; mtls: a client certificate; namespace-key:
# anyone connects, but the namespace answers only to the key.
Shape = Literal["api-key", "mtls", "namespace-key"]
# The name the front door's certificate is for; clients ask for it with
# TEMPORAL_TLS_SERVER_NAME. temporal-tls is its compose service's name.
SERVER_NAME = "temporal.test"
SERVER_NAMES = (SERVER_NAME, "temporal-tls", "localhost")


@dataclass(frozen=True)
class Certificates:
    """PEM files in ``directory``: a CA, a server and a client it signed, and an impostor.

    ``other_ca`` is a second CA that signed ``other_client``: the certificate
    a front door must refuse, and the CA whose trust a client must not lend
    to this front door's server certificate.
    """

    directory: Path
    ca: Path
    client: Path
    client_key: Path
    other_ca: Path
    other_client: Path
    other_client_key: Path

    @classmethod
    def at(cls, directory: Path) -> Certificates:
        """The files' names in ``directory`` (``make_certificates`` writes them)."""
        d = directory
        return cls(d, d / "ca.pem", d / "client.pem", d / "client.key",
                   d / "other_ca.pem", d / "other_client.pem", d / "other_client.key")  # fmt: skip


def make_certificates(directory: Path) -> Certificates:
    """Create the CA, the server's and the clients' certificates with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = Certificates.at(directory)
    for ca in ("ca", "other_ca"):
        _sign(certs, ca, subject=f"workflow-streams test {ca}", by=None)
    names = ", ".join(f"DNS:{name}" for name in SERVER_NAMES) + ", IP:127.0.0.1"
    _sign(certs, "server", subject=SERVER_NAME, by="ca", usage="serverAuth", names=names)
    _sign(certs, "client", subject="workflow-streams client", by="ca", usage="clientAuth")
    _sign(certs, "other_client", subject="impostor client", by="other_ca", usage="clientAuth")
    # Test keys only: readable by the nginx container's own user (uid 101).
    for key in directory.glob("*.key"):
        key.chmod(0o644)
    return certs


def _sign(
    certs: Certificates,
    name: str,
    *,
    subject: str,
    by: str | None,
    usage: str = "",
    names: str = "",
) -> None:
    """One key and its certificate: a self-signed CA when ``by`` is None."""
    key, csr, ext = (certs.directory / f"{name}{suffix}" for suffix in (".key", ".csr", ".ext"))
    if by is None:  # webpki (the SDK's verifier) wants a CA to say so, critically
        lines = ["basicConstraints = critical, CA:TRUE", "keyUsage = critical, keyCertSign"]
    else:
        lines = [
            "basicConstraints = critical, CA:FALSE",
            "keyUsage = critical, digitalSignature",
            f"extendedKeyUsage = {usage}",
            f"subjectAltName = {names or 'DNS:' + name.replace('_', '-')}",
        ]
    ext.write_text("\n".join([*lines, "subjectKeyIdentifier = hash", ""]))
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    _openssl("req", "-new", "-key", key, "-subj", f"/CN={subject}", "-out", csr)
    signer: list[str | Path] = (
        ["-signkey", key] if by is None else ["-CA", certs.directory / f"{by}.pem"]
    )
    if by is not None:
        signer += ["-CAkey", certs.directory / f"{by}.key"]
    serial = str(secrets.randbits(63))
    pem = certs.directory / f"{name}.pem"
    sign: list[str | Path] = ["-set_serial", serial, "-days", "7", "-extfile", ext, "-out", pem]
    _openssl("x509", "-req", "-in", csr, *signer, *sign)
    csr.unlink()
    ext.unlink()


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def render(
    certs: Certificates,
    shape: Shape,
    *,
    listen: str,
    upstream: str,
    api_key: str | None = None,
    seen_at: Path | None = None,
    run: Path | None = None,
) -> Path:
    """Write deploy/tls's config for ``shape`` beside the certificates; return its path.

    ``seen_at`` is where nginx will find that directory (a container's mount
    point); it writes its pid and buffers into ``run`` (``run-SHAPE`` there).
    """
    if (shape != "mtls") != (api_key is not None):
        raise ValueError("an API key is needed by the key shapes, and only there")
    where = seen_at or certs.directory
    values = {
        "LISTEN": listen,
        "UPSTREAM": upstream,
        "CERTS": str(where),
        "RUN": str(run or where / f"run-{shape}"),
        "SHAPE": str(where / f"{shape}.conf"),
        "API_KEY": api_key or "",
    }
    config = certs.directory / f"front-door-{shape}.conf"
    for template, target in (("nginx.conf", config), (f"{shape}.conf", f"{shape}.conf")):
        text = (TEMPLATES / template).read_text()
        for name, value in values.items():
            text = text.replace(f"@@{name}@@", value)
        if "@@" in text:
            raise ValueError(f"{template}: a placeholder was left unfilled")
        (certs.directory / target).write_text(text)
    (certs.directory / f"run-{shape}").mkdir(exist_ok=True)
    return config


@dataclass(frozen=True)
class FrontDoor:
    """A running front door: where it listens, which shape, the key it accepts."""

    address: str
    shape: Shape
    certs: Certificates
    api_key: str | None

    def client_env(self) -> dict[str, str]:
        """TEMPORAL_* for a service that holds the right credential for this door."""
        env = {
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(self.certs.ca),
            "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        }
        if self.api_key is not None:
            return {**env, "TEMPORAL_API_KEY": self.api_key}
        return {
            **env,
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(self.certs.client),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(self.certs.client_key),
        }


def nginx() -> str:
    """The nginx binary (Debian's nginx-light; `make test` installs it when missing)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError("nginx not found: run `make test` as root, or apt-get install nginx")
    return found


@contextmanager
def front_door(
    certs: Certificates, shape: Shape, upstream: str, *, api_key: str | None = None
) -> Iterator[FrontDoor]:
    """Run nginx in front of ``upstream`` (host:port) until the block ends."""
    port = free_port()
    config = render(certs, shape, listen=f"127.0.0.1:{port}", upstream=upstream, api_key=api_key)
    log_path = certs.directory / f"front-door-{shape}.log"
    # -p: where relative paths start; -e: errors to stderr even before the config is read.
    args = ["-p", str(certs.directory), "-e", "stderr", "-c", str(config), "-g", "daemon off;"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [nginx(), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: _listening(port, process, log_path),
            what=f"nginx to listen on port {port}",
            within=30,
        )
        yield FrontDoor(f"127.0.0.1:{port}", shape, certs, api_key)
    finally:
        process.send_signal(signal.SIGTERM)  # fast shutdown, by its own pid
        process.wait(30)


def _listening(port: int, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"nginx exited {process.returncode}: {log.read_text().strip()}")
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
