"""DVC remotes: push and pull with failures explained.

`dvc push` to an S3 remote that is down, misconfigured or refuses the credentials ends with a
generic "failed to push data to the cloud". Here the remote is probed directly (boto3, the same
settings DVC uses) and the failure is told in one sentence naming the remote and what to set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from spamfilter.errors import RemoteError, SpamfilterError


@dataclass(frozen=True)
class S3Remote:
    name: str
    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None
    access_key_id: str | None
    secret_access_key: str | None

    @property
    def where(self) -> str:
        at = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"DVC remote '{self.name}' (s3://{self.bucket}/{self.prefix}{at})"


def remote_config(repo_root: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The named (or default) remote's merged config (repo, `--local`, global), as DVC sees it."""
    from dvc.repo import Repo  # dvc's API takes ~1 s to import: only when a remote is read

    with Repo(str(repo_root)) as repo:
        config = repo.config
        remotes = dict(config.get("remote", {}))
        chosen = name or config.get("core", {}).get("remote")
    if not chosen:
        raise RemoteError("no DVC remote named and no default remote set (`dvc remote default NAME`)")
    if chosen not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise RemoteError(f"DVC remote '{chosen}' is not configured (configured: {known})")
    return chosen, dict(remotes[chosen])


def s3_remote(name: str, config: dict[str, Any], environ: dict[str, str]) -> S3Remote | None:
    """The S3 settings of a remote, with the environment fallbacks DVC's S3 client uses."""
    url = urlparse(str(config.get("url", "")))
    if url.scheme != "s3":
        return None
    return S3Remote(
        name=name,
        bucket=url.netloc,
        prefix=url.path.lstrip("/"),
        endpoint_url=config.get("endpointurl") or environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"),
        region=config.get("region") or environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION"),
        access_key_id=config.get("access_key_id"),
        secret_access_key=config.get("secret_access_key"),
    )


def diagnose_s3(remote: S3Remote, timeout: float = 5.0) -> str | None:
    """Probe the bucket; None when it is reachable and usable, else what is wrong and what to set."""
    import boto3  # boto3 and botocore are slow to import: only when probing an S3 remote
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    client = boto3.client(
        "s3",
        endpoint_url=remote.endpoint_url,
        region_name=remote.region or "us-east-1",
        aws_access_key_id=remote.access_key_id,
        aws_secret_access_key=remote.secret_access_key,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=remote.bucket)
        client.list_objects_v2(Bucket=remote.bucket, Prefix=remote.prefix, MaxKeys=1)
    except EndpointConnectionError:
        return (
            f"{remote.where}: the endpoint is unreachable; start the S3 server or set its address with "
            f"`dvc remote modify --local {remote.name} endpointurl URL` (or AWS_ENDPOINT_URL_S3)"
        )
    except NoCredentialsError:
        return (
            f"{remote.where}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            f"(or `dvc remote modify --local {remote.name} access_key_id …` and `secret_access_key …`)"
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"404", "NoSuchBucket"} or status == 404:
            return (
                f"{remote.where}: bucket '{remote.bucket}' does not exist; create it, or point the remote at "
                f"yours with `dvc remote modify --local {remote.name} url s3://<bucket>/dvc`"
            )
        if (
            code in {"403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"}
            or status == 403
        ):
            return (
                f"{remote.where}: the credentials were refused ({code or status}); check AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY (or the remote's `--local` access_key_id / secret_access_key)"
            )
        return f"{remote.where}: {code or status}: {exc}"
    except BotoCoreError as exc:
        return f"{remote.where}: {exc}"
    return None


def _dvc(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo_root, capture_output=True, text=True, check=False
    )


def dvc_json(repo_root: Path, *args: str) -> Any:
    """The JSON a `dvc … --json` command prints (e.g. `metrics diff main --all`); a failing command
    is a SpamfilterError naming it, with DVC's last line."""

    result = _dvc(repo_root, *args, "--json")
    said = (result.stderr or result.stdout).strip().splitlines()
    if result.returncode != 0:
        raise SpamfilterError(f"dvc {' '.join(args)} failed: {said[-1] if said else f'exit {result.returncode}'}")
    return json.loads(result.stdout or "{}")


def transfer(repo_root: Path, direction: str, remote_name: str | None, targets: list[str]) -> str:
    """`dvc push` or `dvc pull` to/from a remote; on failure, a RemoteError saying why.

    DVC uploads object by object and never deletes the local cache, so a failed push leaves the
    cache intact and rerunning it sends what is missing.
    """
    name, config = remote_config(repo_root, remote_name)
    result = _dvc(repo_root, direction, "--remote", name, *targets)
    if result.returncode == 0:
        return (result.stdout.strip().splitlines() or [f"{direction}: nothing to do"])[-1]
    s3 = s3_remote(name, config, dict(os.environ))
    reason = diagnose_s3(s3) if s3 is not None else None
    dvc_said = (result.stderr or result.stdout).strip().splitlines()
    detail = dvc_said[-1] if dvc_said else f"dvc {direction} exited {result.returncode}"
    raise RemoteError(reason or f"DVC remote '{name}': {detail}")
