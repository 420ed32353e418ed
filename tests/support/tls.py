"""TLS for tests: a CA and certificates made by the openssl command (in
every Debian), the exporter-toolkit web config file that names them, and a
small HTTPS client. For the host tests of the HTTP server and the fleet."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=120)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def make_ca(directory: Path, name: str) -> Pair:
    """A self-signed CA (EC P-256, one day)."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", pair.key, "-out", pair.cert, "-days", "1",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return pair


def make_cert(ca: Pair, directory: Path, name: str, sans: list[str], *,
              client: bool = False) -> Pair:
    """A certificate signed by ca: SANs like "IP:127.0.0.1" or "DNS:node1"."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    usage = "clientAuth" if client else "serverAuth"
    ext.write_text(f"subjectAltName={','.join(sans)}\nextendedKeyUsage={usage}\n"
                   "basicConstraints=CA:FALSE\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", pair.key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
             "-CAcreateserial", "-out", pair.cert, "-days", "1", "-extfile", ext)
    pair.key.chmod(0o600)
    return pair


def bcrypt_hash(password: str) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_web_config(path: Path, *, server: Pair | None = None, client_ca: Path | None = None,
                     client_auth_type: str | None = None,
                     users: dict[str, str] | None = None, **extra: Any) -> Path:
    """An exporter-toolkit web config; users maps names to plain passwords
    (hashed here with bcrypt)."""
    doc: dict[str, Any] = {}
    if server is not None:
        tls: dict[str, Any] = {"cert_file": str(server.cert), "key_file": str(server.key)}
        if client_ca is not None:
            tls["client_ca_file"] = str(client_ca)
        if client_auth_type is not None:
            tls["client_auth_type"] = client_auth_type
        doc["tls_server_config"] = tls
    if users:
        doc["basic_auth_users"] = {u: bcrypt_hash(p) for u, p in users.items()}
    doc.update(extra)
    path.write_text(yaml.safe_dump(doc))
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


def get(url: str, *, ca: Path | None = None, client: Pair | None = None,
        auth: tuple[str, str] | None = None, method: str = "GET",
        timeout: float = 20) -> Answer:
    """One request; an HTTP error status is an Answer too, a refused TLS
    handshake raises (ssl.SSLError, ConnectionError or URLError)."""
    ctx = None
    if url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
        if client is not None:
            ctx.load_cert_chain(client.cert, client.key)
    req = urllib.request.Request(url, method=method)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return Answer(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read(), dict(exc.headers))
