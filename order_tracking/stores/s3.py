"""GX store backends on S3 (or any S3-compatible store): one shared home for several workers.

GX 1.x removed its cloud store backends (``TupleS3StoreBackend`` is gone from 1.24), but kept the
extension point: a store's ``store_backend`` may name any ``TupleStoreBackend`` subclass by
``module_name`` / ``class_name``. These two classes are that:

- :class:`S3StoreBackend` holds the validation results (JSON), so the Data Docs index, which is
  built from the results store, lists the runs of every worker.
- :class:`S3DataDocsStoreBackend` holds the Data Docs site. Every page is pointed at the vendored
  CSS/JS before it is stored (``data_docs_offline.localize_page``) and the vendored files are
  stored with GX's own static assets, so the hosted site renders without internet too. Static
  files already in the bucket with the same content (MD5 = ETag) are not uploaded again.

Credentials: boto3's standard chain (environment, ``~/.aws``, container/instance role; on MWAA the
environment's execution role); in an Airflow task an ``aws`` connection can feed that chain
(``aws_connection.use_airflow_connection``). Nothing secret is ever part of the
store configuration, so nothing secret can end up in ``gx/``.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from great_expectations.data_context.store.tuple_store_backend import TupleStoreBackend
from great_expectations.exceptions import InvalidKeyError
from great_expectations.util import filter_properties_dict

from order_tracking.errors import StoreUnavailable
from order_tracking.reports import data_docs_offline
from order_tracking.settings import S3Location

# A hang is a bug: bounded connect/read times and a few retries (botocore's "standard" mode
# retries throttling and 5xx with backoff; a refused connection fails after 3 attempts).
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})


@functools.cache
def client(endpoint_url: str | None) -> Any:
    """An S3 client from the standard credential chain; path-style addressing for custom endpoints.

    One per endpoint for the process: GX builds a new store backend for every page URL it looks up
    and every docs build, and a new boto3 client costs ~0.4 s CPU (it loads the service model).
    Clients are thread-safe and refresh expiring role credentials themselves.
    """
    config = CLIENT_CONFIG
    if endpoint_url:  # S3-compatible servers rarely have per-bucket host names
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def describe_error(exc: Exception, location: S3Location, endpoint_url: str | None) -> str:
    """One line naming the store and what is wrong with it (never a credential)."""
    where = f"GX store {location.url}"
    if isinstance(exc, NoCredentialsError):
        return f"{where}: no AWS credentials (environment, ~/.aws, instance/task role or Airflow connection)"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            return f"{where}: bucket {location.bucket!r} does not exist"
        if code in (
            "AccessDenied",
            "403",
            "AllAccessDisabled",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ):
            return (
                f"{where}: access denied ({code}); the credentials need s3:ListBucket, s3:GetObject "
                f"and s3:PutObject on {location.url}/*"
            )
        return f"{where}: {code or 'error'}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return f"{where}: cannot reach the S3 endpoint {endpoint_url or '(AWS)'} ({type(exc).__name__})"
    if isinstance(exc, BotoCoreError):
        return f"{where}: {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


def check_access(location: S3Location, endpoint_url: str | None) -> None:
    """List one key under the prefix: proves the endpoint, the bucket, the credentials and ListBucket.

    Raises :class:`StoreUnavailable` with one line. Called once when the context loads, so that a
    wrong setting is reported before GX swallows store errors into warnings.
    """
    try:
        client(endpoint_url).list_objects_v2(Bucket=location.bucket, Prefix=location.key(), MaxKeys=1)
    except (BotoCoreError, ClientError) as exc:
        raise StoreUnavailable(describe_error(exc, location, endpoint_url)) from None


def store_backend_config(
    location: S3Location, endpoint_url: str | None, folder: str, data_docs: bool = False
) -> dict[str, Any]:
    """The ``store_backend`` section of great_expectations.yml for ``<prefix>/<folder>/``."""
    cls = S3DataDocsStoreBackend if data_docs else S3StoreBackend
    config: dict[str, Any] = {
        "module_name": cls.__module__,
        "class_name": cls.__name__,
        "bucket": location.bucket,
        "prefix": location.key(folder),
    }
    if endpoint_url:
        config["endpoint_url"] = endpoint_url
    return config


class S3StoreBackend(TupleStoreBackend):
    """A GX tuple store in ``s3://<bucket>/<prefix>/``: one object per key."""

    def __init__(  # GX passes every TupleStoreBackend argument by name
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        filepath_template: str | None = None,
        filepath_prefix: str | None = None,
        filepath_suffix: str | None = None,
        forbidden_substrings: list[str] | None = None,
        platform_specific_separator: bool = False,
        fixed_length_key: bool = False,
        suppress_store_backend_id: bool = False,
        manually_initialize_store_backend_id: str = "",
        base_public_path: str | None = None,
        store_name: str | None = None,
    ) -> None:
        super().__init__(
            filepath_template=filepath_template,
            filepath_prefix=filepath_prefix,
            filepath_suffix=filepath_suffix,
            forbidden_substrings=forbidden_substrings,
            platform_specific_separator=False,  # object keys always use "/"
            fixed_length_key=fixed_length_key,
            suppress_store_backend_id=suppress_store_backend_id,
            manually_initialize_store_backend_id=manually_initialize_store_backend_id,
            base_public_path=base_public_path,
            store_name=store_name,
        )
        self.location = S3Location(bucket, prefix.strip("/"))
        self.endpoint_url = endpoint_url
        self._s3 = client(endpoint_url)
        if not self._suppress_store_backend_id:
            _ = self.store_backend_id
        self._config = {
            "bucket": bucket,
            "prefix": prefix,
            "endpoint_url": endpoint_url,
            "filepath_template": filepath_template,
            "filepath_prefix": filepath_prefix,
            "filepath_suffix": filepath_suffix,
            "forbidden_substrings": forbidden_substrings,
            "fixed_length_key": fixed_length_key,
            "suppress_store_backend_id": suppress_store_backend_id,
            "manually_initialize_store_backend_id": manually_initialize_store_backend_id,
            "base_public_path": base_public_path,
            "store_name": store_name,
            "module_name": self.__class__.__module__,
            "class_name": self.__class__.__name__,
        }
        filter_properties_dict(properties=self._config, clean_falsy=True, inplace=True)

    # --- keys and object names -----------------------------------------------------------------

    def _object_key(self, key: tuple) -> str:
        return self.location.key(self._convert_key_to_filepath(key))

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One S3 request; failures become one line naming the store (StoreUnavailable)."""
        try:
            return getattr(self._s3, method)(Bucket=self.location.bucket, **kwargs)
        except ClientError as exc:
            if (
                exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")
                and method != "list_objects_v2"
            ):
                raise InvalidKeyError(f"no object s3://{self.location.bucket}/{kwargs.get('Key')}") from None
            raise StoreUnavailable(describe_error(exc, self.location, self.endpoint_url)) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(describe_error(exc, self.location, self.endpoint_url)) from None

    # --- the TupleStoreBackend interface -------------------------------------------------------

    def _get(self, key: tuple) -> str:
        body = self._call("get_object", Key=self._object_key(key))["Body"]
        return body.read().decode("utf-8")

    def _get_all(self) -> list[Any]:
        return [self._get(key) for key in self.list_keys() if key != self.STORE_BACKEND_ID_KEY]

    def _set(self, key: tuple, value: str | bytes, content_encoding: str = "utf-8", **kwargs: Any) -> str:
        if not isinstance(key, tuple):
            key = key.to_tuple()
        object_key = self._object_key(key)
        body = value.encode(content_encoding or "utf-8") if isinstance(value, str) else value
        content_type = kwargs.get("content_type") or "application/json"
        self._call("put_object", Key=object_key, Body=body, ContentType=content_type)
        return object_key

    def _move(self, source_key: tuple, dest_key: tuple, **kwargs: Any) -> None:
        source = self._object_key(source_key)
        self._call(
            "copy_object",
            Key=self._object_key(dest_key),
            CopySource={"Bucket": self.location.bucket, "Key": source},
        )
        self._call("delete_object", Key=source)

    def list_keys(self, prefix: tuple = ()) -> list[tuple]:
        base = self.location.key()
        keys = []
        for obj in self._list_objects(self.location.key(*prefix)):
            filepath = obj["Key"][len(base) + 1 :] if base else obj["Key"]
            if self._is_missing_prefix_or_suffix(self.filepath_prefix, self.filepath_suffix, filepath):
                continue
            key = self._convert_filepath_to_key(filepath)
            if key and not self.is_ignored_key(key):
                keys.append(key)
        return keys

    def _list_objects(self, prefix: str) -> list[dict]:
        objects: list[dict] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=f"{prefix}/" if prefix else "", **token)
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def remove_key(self, key: tuple) -> bool:
        if not isinstance(key, tuple):
            key = key.to_tuple()
        self._call("delete_object", Key=self._object_key(key))
        return True

    def _has_key(self, key: tuple) -> bool:
        try:
            self._call("head_object", Key=self._object_key(key))
        except InvalidKeyError:
            return False
        return True

    def get_url_for_key(self, key: tuple, protocol: str | None = None) -> str:
        """``s3://bucket/key`` (what the AWS CLI and console take); with a custom endpoint its
        path-style HTTP address, which that server serves directly."""
        object_key = self._url_path_escape_special_characters(self._object_key(key))
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.location.bucket}/{object_key}"
        return f"s3://{self.location.bucket}/{object_key}"

    def get_public_url_for_key(self, key: tuple, protocol: str | None = None) -> str:
        """``base_public_path`` (a website or CloudFront address for the prefix) + the key's path."""
        return self.base_public_path + self._url_path_escape_special_characters(
            self._convert_key_to_filepath(key)
        )

    @property
    def config(self) -> dict:
        return self._config


class S3DataDocsStoreBackend(S3StoreBackend):
    """The Data Docs site in a bucket, made to render offline like the local one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._static_etags: dict[str, str] | None = None  # object key -> ETag, listed on first use

    def _set(self, key: tuple, value: str | bytes, content_encoding: str = "utf-8", **kwargs: Any) -> str:
        if not isinstance(key, tuple):
            key = key.to_tuple()
        path = self._convert_key_to_filepath(key)
        if path.startswith("static/"):
            if self._static_etags is None:  # GX copies its static files on every build: add ours once
                self._static_etags = {
                    o["Key"]: o["ETag"].strip('"') for o in self._list_objects(self.location.key("static"))
                }
                for site_path, file in data_docs_offline.vendored_assets():
                    self._put_static(site_path, file.read_bytes(), mimetypes.guess_type(file.name)[0])
            return self._put_static(path, value, kwargs.get("content_type"))
        if isinstance(value, str) and path.endswith(".html"):
            value, _ = data_docs_offline.localize_page(value, path)
        return super()._set(key, value, content_encoding=content_encoding, **kwargs)

    def _put_static(self, path: str, value: str | bytes, content_type: str | None) -> str:
        """Store one static file unless the bucket already holds the same bytes (MD5 = ETag)."""
        body = value.encode("utf-8") if isinstance(value, str) else value
        object_key = self.location.key(path)
        if self._static_etags.get(object_key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            return object_key
        self._call(
            "put_object", Key=object_key, Body=body, ContentType=content_type or "application/octet-stream"
        )
        self._static_etags[object_key] = hashlib.md5(body, usedforsecurity=False).hexdigest()
        return object_key


def put_site_page(location: S3Location, endpoint_url: str | None, page: str, html_text: str) -> str:
    """Store one extra page of ours (the health page) in the bucket's Data Docs site at ``page``."""
    from order_tracking.settings import DATA_DOCS_PREFIX

    config = store_backend_config(location, endpoint_url, DATA_DOCS_PREFIX, data_docs=True)
    for name in ("module_name", "class_name"):
        config.pop(name)
    backend = S3DataDocsStoreBackend(**config, filepath_template=page, suppress_store_backend_id=True)
    return backend.set((), html_text, content_type="text/html; charset=utf-8")
