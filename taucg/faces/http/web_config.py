"""The Prometheus exporter-toolkit web config file (YAML), as every
Prometheus exporter reads it: TLS from ``tls_server_config`` and HTTP basic
auth from ``basic_auth_users`` with bcrypt hashes. Files named in it are
relative to the web config's own directory, as in exporter-toolkit.

TLS is Python's ssl (OpenSSL), the hashes are checked by the bcrypt
package; nothing here does cryptography itself. Every problem names the
file, the key and the fix."""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# exporter-toolkit's names -> what ssl can do. RequireAnyClientCert (a
# certificate demanded but never verified) has no ssl equivalent: OpenSSL
# verifies whatever it requests, so it is refused rather than weakened or
# tightened silently. RequestClientCert asks for a certificate and never
# checks it, so access is exactly that of NoClientCert.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH = {"RequireAnyClientCert": "VerifyClientCertIfGiven or "
                           "RequireAndVerifyClientCert with client_ca_file"}
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
            "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
            "max_version", "client_allowed_sans", "prefer_server_cipher_suites"}
# exporter-toolkit keys taucg does not implement: refused, so an admin
# never believes a setting is in force when it is not.
TLS_UNSUPPORTED = {"cert": "cert_file", "key": "key_file", "client_ca": "client_ca_file",
                   "cipher_suites": "min_version: TLS13 (its suites are all strong)",
                   "curve_preferences": "leaving it out (OpenSSL's defaults)"}
TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
HTTP_KEYS = {"headers", "http2"}
BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")
# An unknown user is checked against this too, so a refusal takes as long
# for a wrong name as for a wrong password (exporter-toolkit does the same).
_DUMMY_HASH = b"$2b$10$QOauhQNbBCuQDKes6eFzj.AK7pWQLS8c2brJu2M/cAPkzR2cHvx2y"


class WebConfigError(Exception):
    """A web config problem: str() names the file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class Tls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    client_auth_type: str
    min_version: str
    max_version: str | None
    client_allowed_sans: tuple[str, ...]


@dataclass(slots=True)
class WebConfig:
    path: str | None
    tls: Tls | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    # (user, sha256 of the password) that bcrypt accepted: bcrypt costs
    # tens of milliseconds by design, and a scraper sends the same pair
    # every few seconds (exporter-toolkit caches the same way).
    _good: OrderedDict[tuple[str, bytes], None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server context, or None for plain HTTP; WebConfigError names
        the file that cannot be used."""
        if self.tls is None:
            return None
        t = self.tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = VERSIONS[t.min_version]
        if t.max_version:
            ctx.maximum_version = VERSIONS[t.max_version]
        where = f"web config {self.path}: tls_server_config"
        for key, file in (("cert_file", t.cert_file), ("key_file", t.key_file),
                          ("client_ca_file", t.client_ca_file)):
            if file is None:
                continue
            try:
                file.open("rb").close()
            except OSError as exc:
                why = (exc.strerror or str(exc)).lower()
                raise WebConfigError(f"{where}.{key}: {file}: {why}; fix "
                                     f"{key} (a relative path is from the web config's "
                                     "directory) or the file's permissions") from None
        try:
            ctx.load_cert_chain(t.cert_file, t.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"{where}: cert_file {t.cert_file} and key_file "
                                 f"{t.key_file} cannot be used together ({exc}); they must "
                                 "be PEM files, the key matching the certificate") from None
        ctx.verify_mode = CLIENT_AUTH[t.client_auth_type]
        if t.client_ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=t.client_ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise WebConfigError(f"{where}.client_ca_file: {t.client_ca_file}: {exc}; it "
                                     "must be a readable PEM file of CA certificates") from None
        return ctx

    def allowed(self, peer_cert: Mapping[str, Any] | None) -> bool:
        """client_allowed_sans: a verified client's certificate must name one."""
        if self.tls is None or not self.tls.client_allowed_sans:
            return True
        if not peer_cert:
            return False
        names = {v for _k, v in peer_cert.get("subjectAltName", ())}
        return bool(names & set(self.tls.client_allowed_sans))

    def check_password(self, user: str, password: str) -> bool:
        """Whether basic auth lets (user, password) in; True without users."""
        import bcrypt

        if not self.users:
            return True
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if key in self._good:
                self._good.move_to_end(key)
                return True
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and hashed is not None
        if ok:
            with self._lock:
                self._good[key] = None
                while len(self._good) > 100:
                    self._good.popitem(last=False)
        return ok


def _fail(path: str, key: str, message: str) -> WebConfigError:
    return WebConfigError(f"web config {path}: {key}: {message}")


def _unknown(path: str, section: str, got: Mapping[str, Any], known: set[str]) -> None:
    for k in got:
        if k not in known:
            where = f"{section}.{k}" if section else str(k)
            raise _fail(path, where, f"unknown key; the keys here are {', '.join(sorted(known))}"
                        " (exporter-toolkit's web config format)")


def _file(base: Path, path: str, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(path, key, "expected a file name")
    p = Path(value)
    return p if p.is_absolute() else base / p


def _tls(path: str, base: Path, raw: Any) -> Tls:
    sec = "tls_server_config"
    if not isinstance(raw, Mapping):
        raise _fail(path, sec, "expected a mapping with cert_file and key_file")
    for k, instead in TLS_UNSUPPORTED.items():
        if k in raw:
            raise _fail(path, f"{sec}.{k}", f"not supported by taucg; use {instead}")
    _unknown(path, sec, raw, TLS_KEYS)
    for k in ("cert_file", "key_file"):
        if not raw.get(k):
            raise _fail(path, f"{sec}.{k}", "missing: TLS needs both cert_file and key_file "
                        "(PEM files)")
    ca = raw.get("client_ca_file")
    auth = raw.get("client_auth_type") or ("RequireAndVerifyClientCert" if ca else "NoClientCert")
    if auth in UNSUPPORTED_CLIENT_AUTH:
        raise _fail(path, f"{sec}.client_auth_type", f"{auth} (a certificate required but "
                    "never verified) is not supported by Python's ssl; use "
                    f"{UNSUPPORTED_CLIENT_AUTH[auth]}")
    if auth not in CLIENT_AUTH:
        raise _fail(path, f"{sec}.client_auth_type", f"{auth!r} is not one of "
                    f"{', '.join([*CLIENT_AUTH, *UNSUPPORTED_CLIENT_AUTH])}")
    if CLIENT_AUTH[auth] != ssl.CERT_NONE and not ca:
        raise _fail(path, f"{sec}.client_ca_file", f"client_auth_type {auth} verifies client "
                    "certificates: set client_ca_file to the CA that signs them")
    if ca and auth == "NoClientCert":
        raise _fail(path, f"{sec}.client_auth_type", "client_ca_file is set but "
                    "client_auth_type is NoClientCert: set RequireAndVerifyClientCert or "
                    "VerifyClientCertIfGiven, or remove client_ca_file")
    versions = {}
    for k, default in (("min_version", "TLS12"), ("max_version", None)):
        v = raw.get(k) or default
        if v is not None and v not in VERSIONS:
            raise _fail(path, f"{sec}.{k}", f"{v!r} is not one of {', '.join(VERSIONS)}")
        versions[k] = v
    sans = raw.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        raise _fail(path, f"{sec}.client_allowed_sans", "expected a list of names")
    if sans and CLIENT_AUTH[auth] != ssl.CERT_REQUIRED:
        raise _fail(path, f"{sec}.client_allowed_sans", "needs client_auth_type "
                    "RequireAndVerifyClientCert, so that every client has a verified "
                    "certificate to check")
    return Tls(_file(base, path, f"{sec}.cert_file", raw["cert_file"]),
               _file(base, path, f"{sec}.key_file", raw["key_file"]),
               None if not ca else _file(base, path, f"{sec}.client_ca_file", ca),
               auth, str(versions["min_version"]), versions["max_version"], tuple(sans))


def _users(path: str, raw: Any) -> dict[str, bytes]:
    sec = "basic_auth_users"
    if not isinstance(raw, Mapping):
        raise _fail(path, sec, "expected a mapping of user name to bcrypt hash")
    users = {}
    for user, hashed in raw.items():
        if not isinstance(hashed, str) or not hashed.encode().startswith(BCRYPT_PREFIXES):
            raise _fail(path, f"{sec}.{user}", "expected a bcrypt hash ($2y$..., $2b$...), "
                        "not a password; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n' "
                        "or python3 -c 'import bcrypt; print(bcrypt.hashpw(b\"PASSWORD\", "
                        "bcrypt.gensalt()).decode())'")
        users[str(user)] = hashed.encode()
    return users


def _headers(path: str, raw: Any) -> dict[str, str]:
    sec = "http_server_config"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(path, sec, "expected a mapping")
    _unknown(path, sec, raw, HTTP_KEYS)
    headers = raw.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in v + k
            for k, v in headers.items()):
        raise _fail(path, f"{sec}.headers", "expected a mapping of header name to text")
    return dict(headers)


def parse(text: str, path: str) -> WebConfig:
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise WebConfigError(f"web config {path}: {line}not valid YAML ({exc}); fix the file "
                             "or [daemon] web_config_file") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise WebConfigError(f"web config {path}: expected a mapping with tls_server_config "
                             "and/or basic_auth_users at the top")
    _unknown(path, "", raw, TOP_KEYS)
    base = Path(path).parent
    tls = None if raw.get("tls_server_config") is None else _tls(
        path, base, raw["tls_server_config"])
    users = {} if raw.get("basic_auth_users") is None else _users(path, raw["basic_auth_users"])
    return WebConfig(path, tls, users, _headers(path, raw.get("http_server_config")))


def load(path: str) -> WebConfig:
    """The file [daemon] web_config_file names; "" is plain HTTP, no users."""
    if not path:
        return WebConfig(None)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise WebConfigError(f"web config {path}: cannot read it ({exc.strerror}); fix "
                             "[daemon] web_config_file or the file's permissions") from None
    web = parse(text, path)
    web.ssl_context()  # every file it names is checked now, not at the first client
    return web
