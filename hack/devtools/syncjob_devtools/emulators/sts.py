"""AWS STS's AssumeRole, as far as cross-account SyncJobs need it: the Query protocol (a form
POST to / with Action and Version), XML answers and errors in STS's shapes. Served beside the
TwinMaker emulator, on the same endpoint, as the operator's explicit endpoint covers every AWS
API it calls. The session credentials it issues are known to the emulator's SigV4 check until
they expire; roles may demand an external id, and every issue is counted."""

from __future__ import annotations

import datetime
import re
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from starlette.responses import Response

from syncjob_devtools.emulators.sigv4 import KnownCredentials

STS_SERVICE = "sts"
STS_VERSION = "2011-06-15"
_NS = f"https://sts.amazonaws.com/doc/{STS_VERSION}/"
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::(\d{12}):role/([\w+=,.@/-]{1,512})$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


class StsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class AssumedRole:
    credentials: KnownCredentials
    role_id: str  # "<AROA...>:<session name>"
    arn: str  # the assumed-role ARN

    def xml(self) -> str:
        """STS's AssumeRole answer."""
        c = self.credentials
        assert c.expires_at is not None  # sessions always expire
        expiration = datetime.datetime.fromtimestamp(c.expires_at, datetime.UTC)
        return (
            f'<AssumeRoleResponse xmlns="{_NS}"><AssumeRoleResult>'
            "<Credentials>"
            f"<AccessKeyId>{c.access_key_id}</AccessKeyId>"
            f"<SecretAccessKey>{c.secret_access_key}</SecretAccessKey>"
            f"<SessionToken>{c.session_token}</SessionToken>"
            f"<Expiration>{expiration.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
            "</Credentials>"
            "<AssumedRoleUser>"
            f"<AssumedRoleId>{escape(self.role_id)}</AssumedRoleId>"
            f"<Arn>{escape(self.arn)}</Arn>"
            "</AssumedRoleUser>"
            f"</AssumeRoleResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            "</ResponseMetadata></AssumeRoleResponse>"
        )


def assume_role(
    params: Mapping[str, str],
    *,
    caller: str,
    external_ids: Mapping[str, str],
    now: datetime.datetime,
) -> AssumedRole:
    """The session AssumeRole issues for `params`, or StsError as STS would refuse them."""
    role_arn = params.get("RoleArn", "")
    session_name = params.get("RoleSessionName", "")
    role = _ROLE_ARN.match(role_arn)
    if role is None:
        raise StsError("ValidationError", f"{role_arn!r} is not a valid role ARN")
    if _SESSION_NAME.match(session_name) is None:
        raise StsError(
            "ValidationError",
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy"
            " constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        )
    external_id = params.get("ExternalId")
    if external_id is not None and _EXTERNAL_ID.match(external_id) is None:
        raise StsError(
            "ValidationError", "ExternalId must be 2 to 1224 characters of [\\w+=,.@:/-]"
        )
    duration = int(params.get("DurationSeconds", "3600"))
    if not 900 <= duration <= 43200:
        raise StsError("ValidationError", "DurationSeconds must be between 900 and 43200")
    if external_ids.get(role_arn) not in (None, external_id):
        raise StsError(
            "AccessDenied",
            f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            403,
        )
    account, role_name = role.group(1), role.group(2).rsplit("/", 1)[-1]
    role_id = "AROA" + _token(string.ascii_uppercase + string.digits, 17)
    credentials = KnownCredentials(
        access_key_id="ASIA" + _token(string.ascii_uppercase + string.digits, 16),
        secret_access_key=_token(string.ascii_letters + string.digits, 40),
        session_token=_token(string.ascii_letters + string.digits, 120),
        # Whole seconds, as the answer states it: the client's view and ours agree.
        expires_at=float(int(now.timestamp()) + duration),
        role_arn=role_arn,
    )
    return AssumedRole(
        credentials=credentials,
        role_id=f"{role_id}:{session_name}",
        arn=f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
    )


def error_response(error: StsError) -> Response:
    kind = "Sender" if error.status < 500 else "Receiver"
    body = (
        f'<ErrorResponse xmlns="{_NS}"><Error><Type>{kind}</Type><Code>{error.code}</Code>'
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status_code=error.status, media_type="text/xml")


def ok_response(body: str) -> Response:
    return Response(body, media_type="text/xml")


def _token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))
