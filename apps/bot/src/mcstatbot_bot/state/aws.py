"""What the DynamoDB store needs of AWS besides DynamoDB itself, for aiodynamo: the region and endpoint from
the AWS SDKs' variables, the credential chain with the two ways EKS hands a pod its role, and the SDKs'
standard retry schedule.

aiodynamo's own providers (AWS_ACCESS_KEY_ID..., ~/.aws/credentials, the ECS container endpoint, EC2
instance metadata) are kept, in the SDKs' order, with two more:

- IRSA (`eks.amazonaws.com/role-arn` on the ServiceAccount): AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE,
  exchanged for the role's credentials with STS AssumeRoleWithWebIdentity (an unsigned call: the
  projected token is the proof), and again before they expire;
- EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI with the token in
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at each refresh: the kubelet rotates it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from aiodynamo.credentials import (
    ChainCredentials,
    ContainerMetadataCredentials,
    Credentials,
    EnvironmentCredentials,
    FileCredentials,
    InstanceMetadataCredentialsV1,
    InstanceMetadataCredentialsV2,
    Key,
    Metadata,
    MetadataCredentials,
    fetch_with_retry_and_timeout,
)
from aiodynamo.http.types import Request
from aiodynamo.models import RetryConfig, RetryTimeout
from yarl import URL

from mcstatbot_bot import metrics
from mcstatbot_bot.state.resilient import CURRENT_OPERATION

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from aiodynamo.http.types import HttpImplementation

STS_NAMESPACE = "{https://sts.amazonaws.com/doc/2011-06-15/}"


class NoRegionError(RuntimeError):
    """Neither AWS_REGION nor AWS_DEFAULT_REGION is set."""


def region() -> str:
    """AWS_REGION (what EKS and SPEC.md set), else AWS_DEFAULT_REGION."""
    found = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise NoRegionError("STATE_BACKEND=dynamodb needs the table's region: set AWS_REGION")
    return found


def endpoint(service: str) -> URL | None:
    """AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL (the SDKs' service-specific endpoint variables:
    DynamoDB Local, a VPC endpoint); None: the service's regional endpoint."""
    found = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")
    return URL(found) if found else None


def _expiry(text: str) -> dt.datetime:
    """STS's Expiration: ISO 8601 UTC, with or without fractional seconds."""
    return dt.datetime.fromisoformat(text)


@dataclass
class WebIdentityCredentials(MetadataCredentials):
    """IRSA: the projected ServiceAccount token exchanged for the role's credentials at STS."""

    role_arn: str | None = field(default_factory=lambda: os.environ.get("AWS_ROLE_ARN"))
    token_file: str | None = field(default_factory=lambda: os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"))
    session_name: str = field(default_factory=lambda: os.environ.get("AWS_ROLE_SESSION_NAME") or "mcstatbot")
    timeout: float = 5.0
    max_attempts: int = 3

    def is_disabled(self) -> bool:
        return not (self.role_arn and self.token_file)

    def _sts_url(self) -> str:
        configured = endpoint("sts")
        if configured is not None:
            return str(configured)
        return f"https://sts.{region()}.amazonaws.com/"

    async def fetch_metadata(self, http: HttpImplementation) -> Metadata:
        assert self.token_file is not None  # noqa: S101 - is_disabled() is checked first
        token = (await asyncio.to_thread(Path(self.token_file).read_text)).strip()
        body = urllib.parse.urlencode(
            {
                "Action": "AssumeRoleWithWebIdentity",
                "Version": "2011-06-15",
                "RoleArn": self.role_arn,
                "RoleSessionName": self.session_name,
                "WebIdentityToken": token,
            }
        ).encode()
        answer = await fetch_with_retry_and_timeout(
            http=http,
            max_attempts=self.max_attempts,
            timeout=self.timeout,
            request=Request(
                method="POST",
                url=self._sts_url(),
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                body=body,
            ),
        )
        # STS's own answer on an HTTPS connection the process opened, not input from a user
        found = ET.fromstring(answer).find(  # noqa: S314
            f"{STS_NAMESPACE}AssumeRoleWithWebIdentityResult/{STS_NAMESPACE}Credentials"
        )
        if found is None:
            raise RuntimeError("STS AssumeRoleWithWebIdentity answered without credentials")

        def text(name: str) -> str:
            value = found.findtext(f"{STS_NAMESPACE}{name}")
            if not value:
                raise RuntimeError(f"STS AssumeRoleWithWebIdentity answered without {name}")
            return value

        return Metadata(
            key=Key(id=text("AccessKeyId"), secret=text("SecretAccessKey"), token=text("SessionToken")),
            expires=_expiry(text("Expiration")),
        )


@dataclass
class PodIdentityCredentials(ContainerMetadataCredentials):
    """The container credential endpoint, with the authorization token read from its file at each
    refresh (EKS Pod Identity) when AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is set."""

    token_file: str | None = field(
        default_factory=lambda: os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    )

    async def fetch_metadata(self, http: HttpImplementation) -> Metadata:
        if self.token_file:
            self.auth_token = (await asyncio.to_thread(Path(self.token_file).read_text)).strip()
        return await super().fetch_metadata(http)


def credentials() -> Credentials:
    """The AWS SDKs' order: AWS_ACCESS_KEY_ID..., IRSA, the shared credentials file
    (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials; AWS_PROFILE), the container endpoint (EKS Pod
    Identity, ECS), EC2 instance metadata. Reads files: call it off the event loop."""
    return ChainCredentials(
        [
            EnvironmentCredentials(),
            WebIdentityCredentials(),
            FileCredentials(
                path=Path(shared) if (shared := os.environ.get("AWS_SHARED_CREDENTIALS_FILE")) else None
            ),
            PodIdentityCredentials(),
            InstanceMetadataCredentialsV2(),
            InstanceMetadataCredentialsV1(),
        ]
    )


@dataclass(frozen=True)
class StandardRetry(RetryConfig):
    """The AWS SDKs' standard retry mode: `retries + 1` attempts in all, the n-th retry after a random
    wait of up to 2**(n-1) seconds (at most 20), each retry counted in mcstatbot_state_store_retries_total
    under the store operation it belongs to. aiodynamo retries what it should (throttling, 5xx, timeouts,
    connection errors) and raises the last error once the attempts are spent."""

    retries: int = 3
    max_delay_secs: float = 20.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.retries):
            yield min(random.random() * 2**attempt, self.max_delay_secs)  # noqa: S311 - jitter

    async def attempts(self) -> AsyncIterator[None]:
        yield
        for delay in self.delays():
            metrics.STATE_RETRIES.labels("dynamodb", CURRENT_OPERATION.get()).inc()
            await asyncio.sleep(delay)
            yield
        raise RetryTimeout
