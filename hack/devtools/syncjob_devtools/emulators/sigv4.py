"""SigV4 checked as AWS's front end checks it: the header's shape and scope, then the access
key (known static keys, or session credentials this emulator's STS issued, with their token and
expiry), then the HMAC itself. The expected signature is computed by botocore's own signer over
the request as it arrived, so client and emulator cannot disagree on canonicalization."""

from __future__ import annotations

from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from syncjob_devtools.emulators.restjson import AwsError

# Accepted when nothing else is configured: the pair in examples/twinmaker.yaml, and the pairs
# the repository's own tools sign with (EmulatorAdmin's twinmaker_client, the operator started
# by localrun, hack/bench_emulators.py).
DEFAULT_AWS_CREDENTIALS: Mapping[str, str] = {
    "AKIAEXAMPLEEXAMPLE00": "example-secret-access-key",
    "emulator": "emulator",
    "local": "local",
    "bench": "bench",
}
_ALGORITHM = "AWS4-HMAC-SHA256"


class KnownCredentials(BaseModel):
    """Body of ``POST /_emulator/credentials``, and what the emulator's STS issues.

    Static keys have no session token and never expire; session credentials carry both.
    """

    model_config = ConfigDict(extra="forbid")

    access_key_id: str = Field(min_length=1)
    secret_access_key: str = Field(min_length=1)
    session_token: str | None = None
    expires_at: float | None = None  # epoch seconds
    role_arn: str | None = None  # the role a session was issued for


class CredentialSummary(BaseModel):
    """``GET /_emulator/credentials``: each known key without its secret or token."""

    access_key_id: str
    kind: str  # "static" or "session"
    role_arn: str | None = None
    expires_at: float | None = None


class CredentialStore:
    """The keys requests may be signed with. Configuration, not state: a reset keeps them."""

    def __init__(self, static: Mapping[str, str]) -> None:
        self._known = {
            key: KnownCredentials(access_key_id=key, secret_access_key=secret)
            for key, secret in static.items()
        }

    def add(self, credentials: KnownCredentials) -> None:
        self._known[credentials.access_key_id] = credentials

    def remove(self, access_key_id: str) -> bool:
        """Forget a key (revoked, or its user deleted); False if it was not known."""
        return self._known.pop(access_key_id, None) is not None

    def summaries(self) -> list[CredentialSummary]:
        return [
            CredentialSummary(
                access_key_id=c.access_key_id,
                kind="static" if c.session_token is None else "session",
                role_arn=c.role_arn,
                expires_at=c.expires_at,
            )
            for c in self._known.values()
        ]

    async def authenticate(
        self, request: Request, *, service: str, region: str, now: float
    ) -> KnownCredentials:
        """The credentials that signed ``request``, or AwsError as AWS would refuse it."""
        header = request.headers.get("authorization")
        if header is None:
            raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token")
        fields = _authorization_fields(header)
        date = request.headers.get("x-amz-date")
        if date is None:
            raise AwsError(
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                f"header. Authorization={header}",
            )
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise AwsError("IncompleteSignatureException", "Credential is malformed.")
        access_key, day, scope_region, scope_service, _ = scope
        if scope_service != service:
            raise AwsError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{service}'. ",
            )
        if scope_region != region:
            raise AwsError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{scope_region}'. ",
            )
        known = self._known.get(access_key)
        if known is None:
            raise AwsError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if known.expires_at is not None and known.expires_at <= now:
            raise AwsError(
                "ExpiredTokenException", "The security token included in the request is expired"
            )
        if known.session_token != request.headers.get("x-amz-security-token"):
            raise AwsError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        expected = await _expected_signature(
            request, known, fields["SignedHeaders"], date, region, service
        )
        if not date.startswith(day) or expected != fields["Signature"]:
            raise AwsError(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.",
            )
        return known


def _authorization_fields(header: str) -> dict[str, str]:
    algorithm, _, rest = header.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if name not in fields]
    if algorithm != _ALGORITHM or missing:
        detail = " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        raise AwsError(
            "IncompleteSignatureException",
            f"{detail or 'Unsupported signing algorithm.'} Authorization={header}",
        )
    return fields


async def _expected_signature(
    request: Request,
    known: KnownCredentials,
    signed_headers: str,
    timestamp: str,
    region: str,
    service: str,
) -> str:
    """botocore's signature over the request as received: the raw path and query, the headers
    the client says it signed (in its order of values), the body."""
    names = signed_headers.split(";")
    headers = {name: ",".join(request.headers.getlist(name)) for name in names}
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    url = f"{request.url.scheme}://{headers.get('host', request.url.netloc)}{path}"
    aws = AWSRequest(
        method=request.method,
        url=f"{url}?{query}" if query else url,
        headers=headers,
        data=await request.body(),
    )
    aws.context["timestamp"] = timestamp
    signer = SigV4Auth(
        Credentials(known.access_key_id, known.secret_access_key, known.session_token),
        service,
        region,
    )
    signature: str = signer.signature(
        signer.string_to_sign(aws, signer.canonical_request(aws)), aws
    )
    return signature
