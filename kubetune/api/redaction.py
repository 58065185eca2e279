"""Credentials out of every text Kubetune echoes: one function for status, Events, logs and reports.

A URI's `user:password@` becomes `user:***@`; a credential in a query (`?token=`, `X-Amz-Signature=`,
Azure's `sig=`, …), an `Authorization:`/`Bearer` value and an `…_PASSWORD=`-style assignment become `***`,
percent-encoded URIs too (an HTTP client's error quotes the URL it called, query and all). Redact before
cutting a text short: a cut credential is no longer recognisable.
Used where text leaves a part of Kubetune (the operator's status writes, Events and log lines, the
trainer's report and termination message, spec and configuration errors), so a value that got into an
error message by any road is not shown. Input that must never carry credentials at all (data paths, the
MLflow tracking URI) is refused with `carries_credentials` instead: what is refused is never stored.

The patterns are RE2-compatible: the CRD's CEL rules use URI_CREDENTIALS_PATTERN as written here.
"""

import re
from typing import Any

MASK = "***"

# The names of query parameters that carry a secret: tokens, passwords, API keys, and the signatures and
# credentials of pre-signed URLs (S3 `X-Amz-*`, GCS `X-Goog-*`, Azure SAS `sig`, old S3 `Signature`).
SECRET_QUERY_NAMES = (
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth_token",
    "auth",
    "authorization",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
)
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# A URI up to its user name; `:password@` follows. A raw '/' is allowed in the password (unencoded cloud
# secrets have them), so a path holding '@' after a port is masked too: in a message that is the safe side.
_USER = rf"{_SCHEME}[^\s/?#@:]*"
_PASSWORD = r":[^\s@]*@"
_SECRET_QUERY_KEY = rf"[?&;](?i:{'|'.join(SECRET_QUERY_NAMES)})="
# What a URI must not hold. CEL's matches() searches, like re.search.
URI_CREDENTIALS_PATTERN = f"{_USER}{_PASSWORD}|{_SECRET_QUERY_KEY}"
CREDENTIALS_RULE = (
    "must not carry credentials (user:password@ or a token or signature in the query): give them to the "
    "trainer through the credentials Secret named in the operator configuration (mlflow.credentialsSecret)"
)

_REDACTIONS = (
    (re.compile(f"({_USER}){_PASSWORD}"), rf"\1:{MASK}@"),
    (re.compile(f"({_SECRET_QUERY_KEY})[^&#\\s\"']*"), rf"\1{MASK}"),
    # The same, percent-encoded: a URI inside another URL's query (an HTTP client's error names the URL it called).
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*%3A%2F%2F[^\s/?#@:%&]*)%3A[^\s&]*%40"), rf"\1%3A{MASK}%40"),
    (re.compile(rf"(?i)((?:%3F|%26)(?:{'|'.join(SECRET_QUERY_NAMES)})%3D)(?:[^\s&%]|%(?!26)[0-9a-f]{{2}})*"), rf"\1{MASK}"),
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"',;]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]{8,}=*"), rf"\1{MASK}"),
    # Environment-style assignments (`MLFLOW_TRACKING_PASSWORD=…`, `AWS_SECRET_ACCESS_KEY: …`).
    (
        re.compile(r"\b([A-Z][A-Z0-9_]*(?:PASSWORD|PASSWD|TOKEN|SECRET|SECRET_KEY|ACCESS_KEY|API_KEY)[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+"),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)(\b(?:password|passwd)[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+"), rf"\1{MASK}"),
)
_URI_CREDENTIALS = re.compile(URI_CREDENTIALS_PATTERN)


def redact(text: str) -> str:
    """The text with every credential it shows replaced by ***; the rest (host, path, user) stays readable."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_strings(value: Any) -> Any:
    """Every string in a JSON-like value (dicts, lists) redacted; keys and other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_strings(item) for item in value]
    return value


def carries_credentials(uri: str) -> bool:
    return _URI_CREDENTIALS.search(uri) is not None
