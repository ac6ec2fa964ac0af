"""S3: the stack's bucket (lake, models, query results) and the ObjectStore port's aws adapter.

The bucket is locked down on creation: versioning, every public-access block, default
encryption, a policy that refuses plain-HTTP requests, owner-enforced object ownership, and a
lifecycle rule that expires query results (they are caches, not data).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fraudctl import errors, naming
from fraudctl.aws.session import AwsSession, error_code, temporary_as
from fraudctl.ports import ObjectInfo, ObjectMissing, check_object_key

_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_ENCRYPTION = {
    "Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
    ]
}
_DELETE_BATCH = 1000  # DeleteObjects' limit


def tls_only_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def lifecycle(expire_days: int) -> dict[str, Any]:
    return {
        "Rules": [
            {
                "ID": "expire-query-results",
                "Filter": {"Prefix": naming.QUERY_RESULTS_PREFIX},
                "Status": "Enabled",
                "Expiration": {"Days": expire_days},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            },
            {
                # Versioning protects against overwrites; old versions need not live forever.
                "ID": "expire-noncurrent-versions",
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
            },
        ]
    }


def bucket_exists(aws: AwsSession, bucket: str) -> bool:
    try:
        aws.client("s3").head_bucket(Bucket=bucket)
    except Exception as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "Forbidden"):
            raise errors.PermissionDenied(
                f"bucket {bucket} exists but belongs to another account or denies access",
                "bucket names are global: pick another --stack name",
            ) from None
        raise
    return True


def _get(call: Any, missing: tuple[str, ...], **kwargs: Any) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = call(**kwargs)
    except Exception as exc:
        if error_code(exc) in missing:
            return None
        raise
    return result


def bucket_drift(aws: AwsSession, bucket: str, expire_days: int) -> list[str]:
    """The locked-down properties the bucket lacks (read-only calls)."""
    s3 = aws.client("s3")
    differing = []
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        differing.append("versioning")
    block = _get(s3.get_public_access_block, ("NoSuchPublicAccessBlockConfiguration",),
                 Bucket=bucket)
    if block is None or block["PublicAccessBlockConfiguration"] != _PUBLIC_ACCESS_BLOCK:
        differing.append("public-access-block")
    encryption = _get(s3.get_bucket_encryption,
                      ("ServerSideEncryptionConfigurationNotFoundError",), Bucket=bucket)
    if encryption is None:
        differing.append("encryption")
    policy = _get(s3.get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=bucket)
    if policy is None or json.loads(policy["Policy"]) != tls_only_policy(bucket):
        differing.append("tls-only-policy")
    rules = _get(s3.get_bucket_lifecycle_configuration, ("NoSuchLifecycleConfiguration",),
                 Bucket=bucket)
    want_rules = lifecycle(expire_days)["Rules"]
    if rules is None or _rule_ids(rules["Rules"]) != _rule_ids(want_rules):
        differing.append("lifecycle")
    tags = _get(s3.get_bucket_tagging, ("NoSuchTagSet",), Bucket=bucket)
    if tags is None or not all(tag in tags["TagSet"] for tag in aws.tags()):
        differing.append("tags")
    return differing


def _rule_ids(rules: list[dict[str, Any]]) -> set[str]:
    return {str(rule.get("ID")) for rule in rules if rule.get("Status") == "Enabled"}


def create_bucket(aws: AwsSession, bucket: str) -> None:
    s3 = aws.client("s3")
    kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if aws.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


def desired_properties(aws: AwsSession, bucket: str, expire_days: int) -> dict[str, Any]:
    """Each locked-down property and the value it is set to: the plan's data and what
    :func:`configure_bucket` puts, from one place."""
    return {
        "public-access-block": _PUBLIC_ACCESS_BLOCK,
        "encryption": _ENCRYPTION,
        "versioning": {"Status": "Enabled"},
        "tls-only-policy": tls_only_policy(bucket),
        "lifecycle": lifecycle(expire_days),
        "tags": {"TagSet": aws.tags()},
    }


def configure_bucket(aws: AwsSession, bucket: str, expire_days: int, only: list[str]) -> None:
    """Apply the locked-down properties named in ``only`` (all of them on creation)."""
    s3 = aws.client("s3")
    want = desired_properties(aws, bucket, expire_days)
    # Public access is blocked before anything else, so no window exists where it is open.
    if "public-access-block" in only:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=want["public-access-block"])
    if "encryption" in only:
        s3.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration=want["encryption"])
    if "versioning" in only:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=want["versioning"])
    if "tls-only-policy" in only:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(want["tls-only-policy"]))
    if "lifecycle" in only:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=want["lifecycle"])
    if "tags" in only:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=want["tags"])


ALL_PROPERTIES = ["public-access-block", "encryption", "versioning", "tls-only-policy",
                  "lifecycle", "tags"]


def empty_bucket(aws: AwsSession, bucket: str) -> int:
    """Delete every object version and delete marker; return how many were deleted.

    Each round lists from the start and deletes what it got: paging on while deleting lets
    the listing's markers point at entries that are gone, and entries get skipped.
    """
    s3 = aws.client("s3")
    deleted = 0
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=_DELETE_BATCH)
        batch = [{"Key": item["Key"], "VersionId": item["VersionId"]}
                 for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
        if not batch:
            return deleted
        for start in range(0, len(batch), _DELETE_BATCH):
            chunk = batch[start : start + _DELETE_BATCH]
            result = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            problems = result.get("Errors", [])
            if problems:
                first = problems[0]
                raise errors.CloudError(
                    f"could not delete {len(problems)} objects from {bucket}: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
            deleted += len(chunk)


def delete_bucket(aws: AwsSession, bucket: str) -> int:
    if not bucket_exists(aws, bucket):
        return 0
    deleted = empty_bucket(aws, bucket)
    aws.client("s3").delete_bucket(Bucket=bucket)
    return deleted


class S3Store:
    """The ObjectStore port over one bucket."""

    def __init__(self, aws: AwsSession, bucket: str) -> None:
        self._aws = aws
        self.bucket = bucket

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/"

    def put(self, key: str, data: bytes) -> None:
        key = check_object_key(key)
        with temporary_as(errors.StorageUnavailable, f"writing {self.location}{key}"):
            self._aws.client("s3").put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        key = check_object_key(key)
        client = self._aws.client("s3")
        try:
            with temporary_as(errors.StorageUnavailable, f"reading {self.location}{key}"):
                body: bytes = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise ObjectMissing(f"no object {key!r} in {self.location}") from None
        return body

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._aws.client("s3").get_paginator("list_objects_v2")
        with temporary_as(errors.StorageUnavailable, f"listing {self.location}{prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item["Size"]))

    def delete(self, key: str) -> None:
        with temporary_as(errors.StorageUnavailable, f"deleting {self.location}{key}"):
            self._aws.client("s3").delete_object(Bucket=self.bucket, Key=check_object_key(key))
