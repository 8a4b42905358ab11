# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup repositories (a local directory, S3) and the manifests that make a backup trustworthy.

Layout, the same in both repositories::

    <prefix>/<backup id>/manifest.json      written last: a backup without it is incomplete
    <prefix>/<backup id>/<artifact>         e.g. files.tar.gz, orders.dump

A backup id sorts by creation time (``20261123T120102Z-files-3f9a``). Every artifact's size and
sha256 are in the manifest; readers hash what they stream and refuse a mismatch.

With a repository key, the manifest also carries an HMAC-SHA256 over its whole canonical content
(``authentication``): the hashes then prove who wrote them, and a manifest re-hashed after its
artifacts were swapped is refused.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import threading

from ansible_collections.mttr.recovery.plugins.module_utils.incident_math import parse_time as iso_time

CHUNK = 1024 * 1024
MANIFEST = "manifest.json"
FORMAT = 1
ID_RE = re.compile(r"^\d{8}T\d{6}Z-[a-z]+-[0-9a-f]{6}$")
HMAC_ALG = "hmac-sha256"
MIN_KEY_BYTES = 16


class BackupError(Exception):
    """A backup operation cannot go on; the message says what is wrong and what to do.

    ``result`` is what was already changed before it stopped (``changed``, ``recovered``...), so the
    failure still says it.
    """

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result or {}


class AuthenticationError(BackupError):
    """A manifest whose HMAC does not verify, or that cannot be authenticated with what was given."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def new_backup_id(kind, now=None):
    now = now or utcnow()
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{kind}-{secrets.token_hex(3)}"


def parse_time(value):
    """An ISO 8601 time (``2026-11-23T12:00:00Z``, with offset, or naive = UTC), or a BackupError saying how."""
    try:
        return iso_time(value)
    except ValueError as exc:
        raise BackupError(str(exc)) from None


class HashingWriter:
    """A write-only stream that hashes and counts what passes through it to ``sink``."""

    def __init__(self, sink):
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha256.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        if hasattr(self.sink, "flush"):
            self.sink.flush()

    def seekable(self):
        return False

    def writable(self):
        return True


class HashingReader:
    """A read-only stream that hashes and counts what is read from ``source``."""

    def __init__(self, source):
        self.source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size=-1):
        data = self.source.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self):
        """Read (and hash) whatever the consumer left unread, so the digest covers the whole artifact."""
        while self.read(CHUNK):
            pass

    def readable(self):
        return True


def check_size(size, artifact, backup_id):
    """Raise BackupError when ``size`` is not the manifest's size of ``artifact``."""
    if size != artifact["size"]:
        raise BackupError(
            f"backup {backup_id}: artifact {artifact['name']} is {size} bytes, the manifest says "
            f"{artifact['size']}: the backup is truncated or corrupt; choose another backup"
        )


def check_artifact(reader, artifact, backup_id):
    """Raise BackupError when what was read does not match the manifest's size and sha256."""
    check_size(reader.size, artifact, backup_id)
    digest = reader.sha256.hexdigest()
    if digest != artifact["sha256"]:
        raise BackupError(
            f"backup {backup_id}: artifact {artifact['name']} has sha256 {digest[:16]}…, the manifest says "
            f"{artifact['sha256'][:16]}…: the backup is corrupt; choose another backup"
        )


def key_id(key):
    """A short public name of a repository key (an HMAC of a constant: it tells keys apart, reveals nothing)."""
    return hmac.new(key, b"mttr.recovery repository key id", hashlib.sha256).hexdigest()[:16]


def canonical(manifest):
    """The bytes the HMAC covers: the whole manifest but the HMAC itself, as sorted, compact UTF-8 JSON."""
    content = dict(manifest)
    if isinstance(content.get("authentication"), dict):
        content["authentication"] = {k: v for k, v in content["authentication"].items() if k != "hmac"}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_manifest(manifest, key):
    """``manifest`` with an ``authentication`` entry: the algorithm, the key's id and the HMAC over the rest."""
    signed = dict(manifest, authentication={"alg": HMAC_ALG, "key_id": key_id(key)})
    signed["authentication"]["hmac"] = hmac.new(key, canonical(signed), hashlib.sha256).hexdigest()
    return signed


def authenticate_manifest(manifest, backup_id, key, allow_unauthenticated=False):
    """Raise AuthenticationError unless the manifest's HMAC verifies with ``key``; a warning or None.

    With a key, a manifest must carry a valid HMAC (one without any passes only with
    ``allow_unauthenticated``, with a warning). Without a key nothing can be authenticated: a signed
    manifest is refused unless ``allow_unauthenticated``; an unsigned one is read as it is.
    """
    auth = manifest.get("authentication")
    if auth is not None and (not isinstance(auth, dict) or auth.get("alg") != HMAC_ALG or "hmac" not in auth):
        raise AuthenticationError(
            f"backup {backup_id}: its manifest's authentication entry is malformed (expected {HMAC_ALG}); "
            "it cannot be trusted: choose another backup"
        )
    if key is None:
        if auth is None:
            return None
        if not allow_unauthenticated:
            raise AuthenticationError(
                f"backup {backup_id} is signed ({HMAC_ALG}, key id {auth.get('key_id', '?')}) but no repository key "
                "was given: it cannot be authenticated; give repository_key, repository_key_file or MTTR_BACKUP_KEY, "
                "or set allow_unauthenticated=true to use it on its hashes alone"
            )
        return f"backup {backup_id} was used on its hashes alone: its HMAC was not authenticated (no key given)"
    if auth is None:
        if not allow_unauthenticated:
            raise AuthenticationError(
                f"backup {backup_id}: its manifest has no HMAC: it cannot be authenticated with the repository key "
                "(it was taken without a key, or its HMAC was stripped); choose a signed backup, or set "
                "allow_unauthenticated=true to use it on its hashes alone"
            )
        return f"backup {backup_id}: its manifest has no HMAC; it was used on its hashes alone"
    expected = hmac.new(key, canonical(manifest), hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, str(auth["hmac"])):
        return None
    ours = key_id(key)
    if auth.get("key_id") != ours:
        raise AuthenticationError(
            f"backup {backup_id}: its manifest's HMAC does not verify: it was signed with another key "
            f"(key id {auth.get('key_id')}, the given key is {ours}); give the key it was taken with"
        )
    raise AuthenticationError(
        f"backup {backup_id}: its manifest's HMAC does not verify: the manifest was changed after it was written; "
        "do not use this backup, choose another one and find out who can write to the repository"
    )


def validate_manifest(manifest, backup_id):
    """Raise BackupError unless ``manifest`` is a complete manifest of ``backup_id``."""
    if not isinstance(manifest, dict):
        raise BackupError(f"backup {backup_id}: the manifest is not a JSON object")
    missing = [key for key in ("id", "created", "kind", "artifacts", "size") if key not in manifest]
    if missing:
        raise BackupError(f"backup {backup_id}: the manifest lacks {', '.join(missing)}")
    if manifest["id"] != backup_id:
        raise BackupError(f"backup {backup_id}: the manifest names another backup ({manifest['id']})")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup {backup_id}: unknown manifest format {manifest.get('format')!r}")
    for artifact in manifest["artifacts"]:
        if not isinstance(artifact, dict) or not {"name", "size", "sha256"} <= set(artifact):
            raise BackupError(f"backup {backup_id}: an artifact entry lacks name, size or sha256")
        if "/" in artifact["name"] or artifact["name"] in ("", ".", "..", MANIFEST):
            raise BackupError(f"backup {backup_id}: artifact name {artifact['name']!r} is not allowed")
    parse_time(manifest["created"])
    return manifest


class Repository:
    """Where backups live. Subclasses store bytes; this class knows manifests, their HMAC and selection."""

    kind = "repository"

    def __init__(self):
        self.key = None
        self.allow_unauthenticated = False
        self.warnings = []  # manifests used without being authenticated (allow_unauthenticated)

    def use_key(self, key, allow_unauthenticated=False):
        """Sign manifests written and authenticate manifests read with ``key`` (bytes, str or None)."""
        self.key = key.encode("utf-8") if isinstance(key, str) else key
        self.allow_unauthenticated = allow_unauthenticated
        self.warnings = []
        return self

    def describe(self):
        raise NotImplementedError

    # storage primitives -------------------------------------------------------------
    def list_ids(self):
        raise NotImplementedError

    def read_bytes(self, backup_id, name):
        raise NotImplementedError

    def write_artifact(self, backup_id, name, source):
        """Store the bytes of readable ``source``; return (size, sha256) computed while storing."""
        raise NotImplementedError

    def artifact_writer(self, backup_id, name):
        """A context manager yielding a writable stream; ``.size`` and ``.sha256`` are set on exit."""
        raise NotImplementedError

    def write_manifest(self, backup_id, manifest):
        raise NotImplementedError

    def open_artifact(self, backup_id, name):
        """A readable stream of the artifact's bytes, in order."""
        raise NotImplementedError

    def delete(self, backup_id):
        raise NotImplementedError

    def exists(self, backup_id, name):
        raise NotImplementedError

    def holds(self, backup_id):
        """Whether anything at all is stored under ``backup_id``."""
        raise NotImplementedError

    # manifests ---------------------------------------------------------------------------
    def store_manifest(self, backup_id, manifest):
        """Write the manifest, signed when there is a key; return what was written."""
        if self.key is not None:
            manifest = sign_manifest(manifest, self.key)
        self.write_manifest(backup_id, manifest)
        return manifest

    def manifest(self, backup_id):
        try:
            raw = self.read_bytes(backup_id, MANIFEST)
        except FileNotFoundError:
            if not self.holds(backup_id):
                raise BackupError(self._not_found(backup_id)) from None
            raise BackupError(
                f"backup {backup_id} in {self.describe()} has no manifest: it is incomplete (interrupted?) "
                "and cannot be trusted; choose another backup"
            ) from None
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BackupError(f"backup {backup_id}: the manifest is not valid JSON ({exc})") from None
        validate_manifest(manifest, backup_id)
        warning = authenticate_manifest(manifest, backup_id, self.key, self.allow_unauthenticated)
        if warning and warning not in self.warnings:
            self.warnings.append(warning)
        return manifest

    def _not_found(self, backup_id):
        """Say a backup does not exist, with the ids of its kind nearest to it in time and the newest."""
        kind = backup_id.split("-")[1]
        ids = sorted(i for i in self.list_ids() if i.split("-")[1] == kind and i != backup_id)
        message = f"backup {backup_id} does not exist in {self.describe()}"
        if not ids:
            return f"{message}; it holds no {kind} backups at all"
        older = [i for i in ids if i < backup_id][-1:]
        newer = [i for i in ids if i > backup_id][:1]
        nearest = [f"{i} (older)" for i in older] + [f"{i} (newer)" for i in newer]
        return f"{message}; nearest: {', '.join(nearest)}; newest: {ids[-1]}"

    def catalog(self, kind=None, source=None):
        """Manifests of every complete, authentic backup (oldest first), and the ids not usable with why.

        Each unusable id has ``status``: ``unauthenticated`` (its HMAC does not verify, or it cannot be
        authenticated with what was given) or ``incomplete`` (no manifest, or an unreadable one).
        """
        good, bad = [], []
        for backup_id in sorted(self.list_ids()):
            try:
                manifest = self.manifest(backup_id)
            except AuthenticationError as exc:
                bad.append({"id": backup_id, "error": str(exc), "status": "unauthenticated"})
                continue
            except BackupError as exc:
                bad.append({"id": backup_id, "error": str(exc), "status": "incomplete"})
                continue
            if kind and manifest["kind"] != kind:
                continue
            if source and manifest.get("source", {}).get("name") != source:
                continue
            good.append(manifest)
        good.sort(key=lambda m: (parse_time(m["created"]), m["id"]))
        return good, bad

    def verify(self, backup_id, manifest=None):
        """Re-hash every artifact against the manifest; return the manifest or raise BackupError."""
        manifest = manifest or self.manifest(backup_id)
        for artifact in manifest["artifacts"]:
            try:
                stream = self.open_artifact(backup_id, artifact["name"])
            except FileNotFoundError:
                raise BackupError(f"backup {backup_id}: artifact {artifact['name']} is missing") from None
            reader = HashingReader(stream)
            try:
                reader.drain()
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
            check_artifact(reader, artifact, backup_id)
        return manifest


def skipped_summary(bad):
    """' (2 incomplete or unreadable backups skipped; ...)': what a selection skipped, and why when refused."""
    refused = [entry for entry in bad if entry.get("status") == "unauthenticated"]
    parts = []
    if len(bad) > len(refused):
        parts.append(f"{len(bad) - len(refused)} incomplete or unreadable backups skipped")
    if refused:
        parts.append(f"{len(refused)} unauthenticated backups skipped, the newest because {refused[-1]['error']}")
    return f" ({'; '.join(parts)})" if parts else ""


def select_backup(repository, kind=None, source=None, backup_id=None, latest_before=None):
    """Pick a backup: by id, the latest, or the latest created strictly before a time."""
    return select_backup_noting(repository, kind, source, backup_id, latest_before)[0]


def select_backup_noting(repository, kind=None, source=None, backup_id=None, latest_before=None):
    """select_backup, and warnings about newer backups it skipped because they are not authentic."""
    if backup_id and backup_id != "latest":
        manifest = repository.manifest(backup_id)
        if kind and manifest["kind"] != kind:
            raise BackupError(f"backup {backup_id} is a {manifest['kind']} backup, not {kind}")
        return manifest, []
    good, bad = repository.catalog(kind=kind, source=source)
    if latest_before is not None:
        limit = parse_time(latest_before)
        good = [m for m in good if parse_time(m["created"]) < limit]
    if not good:
        what = f"{kind} backup" if kind else "backup"
        where = f" of {source}" if source else ""
        when = f" created before {latest_before}" if latest_before is not None else ""
        raise BackupError(f"no complete {what}{where}{when} in {repository.describe()}{skipped_summary(bad)}")
    chosen = good[-1]
    # ids start with their creation time (to the second): one not older than the chosen is skipped news
    warnings = [
        f"skipped backup {entry['id']}, not older than {chosen['id']}: {entry['error']}"
        for entry in bad
        if entry.get("status") == "unauthenticated" and entry["id"][:16] >= chosen["id"][:16]
    ]
    return chosen, warnings


class LocalRepository(Repository):
    kind = "local"

    def __init__(self, path):
        super().__init__()
        self.root = os.path.abspath(path)

    def describe(self):
        return f"local repository {self.root}"

    def _dir(self, backup_id):
        if not ID_RE.match(backup_id):
            raise BackupError(f"{backup_id!r} is not a backup id (expected e.g. 20261123T120102Z-files-3f9a01)")
        return os.path.join(self.root, backup_id)

    def list_ids(self):
        try:
            return [name for name in os.listdir(self.root) if ID_RE.match(name)]
        except FileNotFoundError:
            return []

    def read_bytes(self, backup_id, name):
        with open(os.path.join(self._dir(backup_id), name), "rb") as handle:
            return handle.read()

    def exists(self, backup_id, name):
        return os.path.exists(os.path.join(self._dir(backup_id), name))

    def holds(self, backup_id):
        try:
            return bool(os.listdir(self._dir(backup_id)))
        except (FileNotFoundError, NotADirectoryError):
            return False

    def write_artifact(self, backup_id, name, source):
        directory = self._dir(backup_id)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        partial = os.path.join(directory, f".{name}.partial")
        with open(partial, "wb") as handle:
            writer = HashingWriter(handle)
            shutil.copyfileobj(source, writer, CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, os.path.join(directory, name))
        return writer.size, writer.sha256.hexdigest()

    def artifact_writer(self, backup_id, name):
        return _LocalArtifactWriter(self, backup_id, name)

    def write_manifest(self, backup_id, manifest):
        directory = self._dir(backup_id)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest.")
        with os.fdopen(fd, "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, os.path.join(directory, MANIFEST))
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def open_artifact(self, backup_id, name):
        return open(os.path.join(self._dir(backup_id), name), "rb")

    def artifact_path(self, backup_id, name):
        return os.path.join(self._dir(backup_id), name)

    def delete(self, backup_id):
        shutil.rmtree(self._dir(backup_id), ignore_errors=True)


class S3Repository(Repository):
    """Backups in an S3 bucket (or any S3-compatible endpoint), through boto3's transfer manager."""

    kind = "s3"

    def __init__(self, client, bucket, prefix="", transfer_config=None):
        super().__init__()
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.transfer_config = transfer_config

    def describe(self):
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, backup_id, name=""):
        if not ID_RE.match(backup_id):
            raise BackupError(f"{backup_id!r} is not a backup id (expected e.g. 20261123T120102Z-files-3f9a01)")
        return "/".join(part for part in (self.prefix, backup_id, name) if part)

    def _missing(self, exc):
        error = getattr(exc, "response", {}).get("Error", {})
        return error.get("Code") in ("NoSuchKey", "404", "NotFound")

    def list_ids(self):
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        ids = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].strip("/")
                if ID_RE.match(name):
                    ids.append(name)
        return ids

    def read_bytes(self, backup_id, name):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(backup_id, name))["Body"].read()
        except Exception as exc:  # botocore's ClientError, without importing botocore here
            if self._missing(exc):
                raise FileNotFoundError(name) from None
            raise

    def exists(self, backup_id, name):
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(backup_id, name))
        except Exception as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def holds(self, backup_id):
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(backup_id) + "/", MaxKeys=1)
        return bool(listing.get("KeyCount") or listing.get("Contents"))

    def write_artifact(self, backup_id, name, source):
        reader = HashingReader(source)
        self.client.upload_fileobj(reader, self.bucket, self._key(backup_id, name), Config=self.transfer_config)
        return reader.size, reader.sha256.hexdigest()

    def artifact_writer(self, backup_id, name):
        return _S3ArtifactWriter(self, backup_id, name)

    def write_manifest(self, backup_id, manifest):
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._key(backup_id, MANIFEST), Body=body)

    def open_artifact(self, backup_id, name):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(backup_id, name))["Body"]
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(name) from None
            raise

    def download_artifact(self, backup_id, name, sink):
        """Multipart, parallel download through the transfer manager into a non-seekable ``sink``.

        The transfer manager writes a non-seekable stream strictly in order, so ``sink`` can hash
        as it goes: the checksum is verified while streaming, with no second read.
        """
        try:
            self.client.download_fileobj(self.bucket, self._key(backup_id, name), sink, Config=self.transfer_config)
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(name) from None
            raise

    def delete(self, backup_id):
        prefix = self._key(backup_id) + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


class _LocalArtifactWriter:
    def __init__(self, repository, backup_id, name):
        self.directory = repository._dir(backup_id)
        self.name = name
        self.partial = os.path.join(self.directory, f".{name}.partial")
        self.size = None
        self.sha256 = None

    def __enter__(self):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self.handle = open(self.partial, "wb")
        self.writer = HashingWriter(self.handle)
        return self.writer

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        self.handle.close()
        if exc_type is not None:
            os.unlink(self.partial)
            return False
        os.replace(self.partial, os.path.join(self.directory, self.name))
        self.size, self.sha256 = self.writer.size, self.writer.sha256.hexdigest()
        return False


class _PipeReader:
    """The read end of an OS pipe as a non-seekable stream for boto3's upload_fileobj."""

    def __init__(self, fd):
        self.handle = os.fdopen(fd, "rb", buffering=CHUNK)

    def read(self, size=-1):
        return self.handle.read(size)

    def readable(self):
        return True

    def seekable(self):
        return False


class _S3ArtifactWriter:
    """Streams what is written through a pipe to a multipart upload running in a thread."""

    def __init__(self, repository, backup_id, name):
        self.repository = repository
        self.key = repository._key(backup_id, name)
        self.size = None
        self.sha256 = None
        self.error = None

    def _upload(self, reader):
        try:
            self.repository.client.upload_fileobj(
                reader, self.repository.bucket, self.key, Config=self.repository.transfer_config
            )
        except Exception as exc:  # re-raised in the writer's thread on exit
            self.error = exc
            # keep draining so the writer never blocks on a full pipe
            while reader.read(CHUNK):
                pass

    def __enter__(self):
        read_fd, write_fd = os.pipe()
        self.pipe = os.fdopen(write_fd, "wb", buffering=CHUNK)
        self.writer = HashingWriter(self.pipe)
        self.thread = threading.Thread(target=self._upload, args=(_PipeReader(read_fd),), daemon=True)
        self.thread.start()
        return self.writer

    def __exit__(self, exc_type, exc, tb):
        self.pipe.close()
        self.thread.join()
        if exc_type is not None:
            self.repository.client.delete_object(Bucket=self.repository.bucket, Key=self.key)
            return False
        if self.error is not None:
            raise BackupError(f"upload to s3://{self.repository.bucket}/{self.key} failed: {self.error}")
        self.size, self.sha256 = self.writer.size, self.writer.sha256.hexdigest()
        return False
