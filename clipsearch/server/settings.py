"""Server settings and the safety rules for where it may listen."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from clipsearch.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD = 20 * 2**20  # bytes
MIN_TOKEN_LENGTH = 16
TOKEN_ENV = "CLIPSEARCH_TOKEN"


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    warm: bool = True  # load the model and the index before answering

    def __post_init__(self) -> None:
        check_bind(self.host, self.token)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, got {self.port}")
        if self.max_upload_bytes < 1024:
            raise ConfigError(f"the upload limit must be 1 KB or more, not {self.max_upload_bytes}")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def with_(self, **changes: object) -> ServerSettings:
        return replace(self, **changes)


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token (and refuse weak tokens)."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the token is too short ({len(token)} characters; at least {MIN_TOKEN_LENGTH})",
            hint="Make a strong one: python -c 'import secrets; print(secrets.token_urlsafe())'",
        )
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to listen on {host} without a token: anyone who can reach this machine "
            "could browse your photos",
            hint=f"Set a token with --token or {TOKEN_ENV} (every request must then carry it), "
            "or listen on this machine only with --host 127.0.0.1.\n"
            "A strong token: python -c 'import secrets; print(secrets.token_urlsafe())'",
        )
