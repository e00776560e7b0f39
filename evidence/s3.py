"""Evidence in an S3-compatible bucket (Amazon S3, SeaweedFS, MinIO, Ceph, R2, ...), via boto3.

Same layout as the local store under an optional prefix:
``<prefix>blobs/<sha256>`` and ``<prefix>holds/<hold id>.json``. Uploads
stream in multipart parts of ``PART_BYTES`` (boto3's transfer manager keeps
at most ``CONCURRENCY`` parts in memory) and are hashed as they go; a blob
whose bytes turn out not to match its name is deleted again. Downloads
stream and are verified by ``evidence.store.verified``.

Errors are sorted for the worker: a missing key is ``EvidenceMissingError``
(retrying cannot help); connection failures, timeouts, throttling and 5xx
are ``StoreUnavailableError`` (Hatchet retries the step).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from evidence.store import (
    BlobInfo,
    EvidenceCorruptError,
    EvidenceError,
    EvidenceMissingError,
    Hold,
    StoreUnavailableError,
    check_sha256,
    verified,
)

PART_BYTES = 8 * 1024 * 1024
CONCURRENCY = 2
READ_CHUNK = 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


class _HashingReader:
    """A forward-only reader (no seek: boto3 then reads it in order) that hashes as it goes."""

    def __init__(self, source: BinaryIO, size: int) -> None:
        self._source = source
        self._left = size
        self.digest = hashlib.sha256()
        self.read_bytes = 0

    def read(self, amount: int = -1) -> bytes:
        want = self._left if amount is None or amount < 0 else min(amount, self._left)
        data = self._source.read(want) if want else b""
        self._left -= len(data)
        self.read_bytes += len(data)
        self.digest.update(data)
        return data


class S3Store:
    """An ``EvidenceStore`` on an S3-compatible bucket.

    ``client`` is a boto3 S3 client; ``S3Store.connect`` makes one from
    settings (endpoint, region, optional keys; otherwise boto3's own
    credential chain: environment, shared config, instance role).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def connect(
        cls,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        timeout_seconds: float = 30,
    ) -> S3Store:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        return cls(client, bucket, prefix)

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _blob_key(self, sha256: str) -> str:
        return f"{self.prefix}blobs/{check_sha256(sha256)}"

    def _hold_key(self, hold_id: str) -> str:
        return f"{self.prefix}holds/{hold_id}.json"

    def _error(self, exc: Exception, doing: str) -> EvidenceError:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _MISSING or status == 404:
                if code == "NoSuchBucket":
                    return StoreUnavailableError(f"{self.description}: no such bucket")
                return EvidenceMissingError(f"{doing}: not in {self.description}")
            return StoreUnavailableError(
                f"{doing} in {self.description}: {code or status} {error.get('Message', '')}"
                .rstrip()
            )
        if isinstance(exc, BotoCoreError):
            return StoreUnavailableError(f"{doing} in {self.description}: {exc}")
        return StoreUnavailableError(f"{doing} in {self.description}: {type(exc).__name__}: {exc}")

    def put(self, sha256: str, size: int, source: BinaryIO) -> None:
        from boto3.s3.transfer import TransferConfig

        key = self._blob_key(sha256)
        if self.size(sha256) == size:
            self._touch(key)
            return
        reader = _HashingReader(source, size)
        try:
            self._client.upload_fileobj(
                reader,
                self.bucket,
                key,
                Config=TransferConfig(
                    multipart_threshold=PART_BYTES,
                    multipart_chunksize=PART_BYTES,
                    max_concurrency=CONCURRENCY,
                    max_io_queue=CONCURRENCY,
                ),
            )
        except Exception as exc:
            raise self._error(exc, f"storing blob {sha256[:12]}") from exc
        if reader.read_bytes != size or reader.digest.hexdigest() != sha256:
            self.delete(sha256)
            raise EvidenceCorruptError(f"upload of blob {sha256[:12]} did not match its sha256")

    def _touch(self, key: str) -> None:
        """Refresh an existing blob's age (the sweep's grace), by copying it onto itself."""
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={"touched": datetime.now(tz=UTC).isoformat()},
            )
        except Exception as exc:
            raise self._error(exc, f"refreshing {key}") from exc

    def size(self, sha256: str) -> int | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._blob_key(sha256))
        except Exception as exc:
            error = self._error(exc, f"looking up blob {sha256[:12]}")
            if isinstance(error, EvidenceMissingError):
                return None
            raise error from exc
        return int(head["ContentLength"])

    def read(self, sha256: str, size: int) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._blob_key(sha256))["Body"]
        except Exception as exc:
            raise self._error(exc, f"blob {sha256[:12]}") from exc
        return verified(sha256, size, self._stream(body, sha256))

    def _stream(self, body: Any, sha256: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(READ_CHUNK)
        except Exception as exc:
            raise self._error(exc, f"reading blob {sha256[:12]}") from exc
        finally:
            body.close()

    def delete(self, sha256: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._blob_key(sha256))
        except Exception as exc:
            raise self._error(exc, f"deleting blob {sha256[:12]}") from exc

    def _list(self, sub: str) -> Iterator[dict[str, Any]]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}{sub}/"
            )
            for page in pages:
                yield from page.get("Contents", [])
        except Exception as exc:
            raise self._error(exc, f"listing {sub}") from exc

    def blobs(self) -> Iterator[BlobInfo]:
        for item in self._list("blobs"):
            name = str(item["Key"]).rsplit("/", 1)[-1]
            if len(name) == 64:
                yield BlobInfo(name, int(item["Size"]), item["LastModified"].timestamp())

    def put_hold(self, hold: Hold) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._hold_key(hold.hold_id),
                Body=hold.to_json(),
                ContentType="application/json",
            )
        except Exception as exc:
            raise self._error(exc, f"writing the hold of ticket {hold.ticket_id}") from exc

    def holds(self) -> Iterator[Hold]:
        for item in self._list("holds"):
            try:
                body = self._client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                yield Hold.from_json(body.read())
            except Exception as exc:
                error = self._error(exc, f"reading {item['Key']}")
                if isinstance(error, EvidenceMissingError):
                    continue  # released meanwhile
                raise error from exc

    def delete_hold(self, hold: Hold) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._hold_key(hold.hold_id))
        except Exception as exc:
            raise self._error(exc, f"deleting the hold of ticket {hold.ticket_id}") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (for set-ups and tests; production buckets exist)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except Exception:
            pass
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._error(exc, "creating the bucket") from exc
