"""Backup repositories (a local directory and S3 on a real moto server), manifests, selection and retention."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re

import pytest

from ansible_collections.mttr.recovery.plugins.module_utils.backup_common import resolve_key
from ansible_collections.mttr.recovery.plugins.module_utils.backup_ops import (
    backup_info,
    find_backup,
    prune,
    prune_plan,
    restore,
    take_backup,
)
from ansible_collections.mttr.recovery.plugins.module_utils.backup_repo import (
    MANIFEST,
    AuthenticationError,
    BackupError,
    HashingWriter,
    LocalRepository,
    new_backup_id,
    parse_time,
    select_backup,
    utcnow,
)
from ansible_collections.mttr.recovery.tests.support.backups import (
    flip_byte,
    manifest_for,
    put_raw,
    remove_raw,
    store_backup,
    truncate,
)

T0 = datetime.datetime(2026, 11, 20, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture
def local_repo(tmp_path):
    return LocalRepository(tmp_path / "repo")


def write_with_writer(repository, backup_id, name, chunks):
    """Write through artifact_writer; return the context manager (its size and sha256 are set on exit)."""
    context = repository.artifact_writer(backup_id, name)
    with context as stream:
        for chunk in chunks:
            stream.write(chunk)
    return context


# ----------------------------------------------------------------------------- storage round trip


def test_round_trip_of_artifacts_and_manifest(repo):
    backup_id = new_backup_id("files")
    chunks = [os.urandom(300_000), b"middle", os.urandom(70_000)]
    data = b"".join(chunks)
    context = write_with_writer(repo, backup_id, "files.tar.gz", chunks)
    assert context.size == len(data)
    assert context.sha256 == hashlib.sha256(data).hexdigest()

    other = os.urandom(50_000)
    size, sha256 = repo.write_artifact(backup_id, "extra.bin", io.BytesIO(other))
    assert (size, sha256) == (len(other), hashlib.sha256(other).hexdigest())

    artifacts = [
        {"name": "files.tar.gz", "size": context.size, "sha256": context.sha256},
        {"name": "extra.bin", "size": size, "sha256": sha256},
    ]
    manifest = {
        "format": 1,
        "id": backup_id,
        "created": utcnow().isoformat(),
        "kind": "files",
        "source": {"name": "app"},
        "artifacts": artifacts,
        "size": context.size + size,
        "tags": {"why": "test"},
    }
    repo.write_manifest(backup_id, manifest)

    assert repo.manifest(backup_id) == manifest
    assert json.loads(repo.read_bytes(backup_id, MANIFEST)) == manifest
    stream = repo.open_artifact(backup_id, "files.tar.gz")
    try:
        assert stream.read() == data
    finally:
        stream.close()
    assert repo.read_bytes(backup_id, "extra.bin") == other
    assert repo.exists(backup_id, "files.tar.gz")
    assert not repo.exists(backup_id, "nothing.bin")
    assert repo.list_ids() == [backup_id]
    assert repo.verify(backup_id) == manifest
    if isinstance(repo, LocalRepository):
        assert sorted(os.listdir(os.path.join(repo.root, backup_id))) == ["extra.bin", "files.tar.gz", MANIFEST]


def test_list_ids_of_an_empty_or_missing_repository(repo, tmp_path):
    assert repo.list_ids() == []
    assert LocalRepository(tmp_path / "never-created").list_ids() == []


def test_artifact_writer_failure_leaves_nothing(repo):
    backup_id = new_backup_id("files")
    with pytest.raises(RuntimeError, match="dump failed"), repo.artifact_writer(backup_id, "files.tar.gz") as stream:
        stream.write(os.urandom(100_000))
        raise RuntimeError("dump failed")
    assert not repo.exists(backup_id, "files.tar.gz")
    if isinstance(repo, LocalRepository):
        assert os.listdir(os.path.join(repo.root, backup_id)) == []


@pytest.mark.integration
def test_s3_writer_reports_upload_failure(moto):
    repository = moto.repository()
    repository.bucket = "mttr-no-such-bucket"
    with pytest.raises(BackupError, match=r"upload to s3://mttr-no-such-bucket/.*failed"):
        write_with_writer(repository, new_backup_id("files"), "files.tar.gz", [os.urandom(1_000_000)])


def test_ids_are_checked(repo):
    for bad in ("../../etc", "latest", "20261123T120102Z-files-3f9a0"):
        with pytest.raises(BackupError, match="is not a backup id"):
            repo.manifest(bad)


def test_catalog_skips_incomplete_and_unreadable_backups(repo):
    first = store_backup(repo, "files", {"files.tar.gz": b"one"}, created=T0)
    second = store_backup(repo, "files", {"files.tar.gz": b"two"}, created=T0 + datetime.timedelta(hours=1))
    pg = store_backup(repo, "postgres", {"db.dump": b"pg"}, created=T0 + datetime.timedelta(hours=2), source="db")
    incomplete = new_backup_id("files", T0 + datetime.timedelta(hours=3))
    put_raw(repo, incomplete, "files.tar.gz", b"interrupted before the manifest")
    garbled = new_backup_id("files", T0 + datetime.timedelta(hours=4))
    put_raw(repo, garbled, "files.tar.gz", b"x")
    put_raw(repo, garbled, MANIFEST, b"{not json")

    assert sorted(repo.list_ids()) == sorted([first["id"], second["id"], pg["id"], incomplete, garbled])
    good, bad = repo.catalog()
    assert [m["id"] for m in good] == [first["id"], second["id"], pg["id"]]
    assert {entry["id"]: entry["error"] for entry in bad}.keys() == {incomplete, garbled}
    errors = {entry["id"]: entry["error"] for entry in bad}
    assert "has no manifest: it is incomplete" in errors[incomplete]
    assert "not valid JSON" in errors[garbled]

    good, bad = repo.catalog(kind="files")
    assert [m["id"] for m in good] == [first["id"], second["id"]]
    assert len(bad) == 2
    good, _bad = repo.catalog(source="db")
    assert [m["id"] for m in good] == [pg["id"]]

    info = backup_info(repo, verify="full")
    statuses = {entry["id"]: entry["status"] for entry in info["backups"]}
    assert statuses == {
        first["id"]: "verified",
        second["id"]: "verified",
        pg["id"]: "verified",
        incomplete: "incomplete",
        garbled: "incomplete",
    }
    assert info["latest"] == pg["id"]
    assert info["changed"] is False


# ----------------------------------------------------------------------------- verification


def test_verify_passes_on_a_good_backup(repo):
    manifest = store_backup(repo, "files", {"files.tar.gz": os.urandom(200_000), "b.bin": b"small"})
    assert repo.verify(manifest["id"]) == manifest


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "has sha256 .*the manifest says .*corrupt"),
        ("truncate", "is \\d+ bytes, the manifest says 200000: the backup is truncated or corrupt"),
        ("missing", "artifact files.tar.gz is missing"),
    ],
)
def test_verify_refuses_damaged_artifacts(repo, damage, message):
    manifest = store_backup(repo, "files", {"files.tar.gz": os.urandom(200_000)})
    backup_id = manifest["id"]
    if damage == "flip":
        flip_byte(repo, backup_id, "files.tar.gz")
    elif damage == "truncate":
        truncate(repo, backup_id, "files.tar.gz")
    else:
        remove_raw(repo, backup_id, "files.tar.gz")
    with pytest.raises(BackupError, match=message):
        repo.verify(backup_id)
    info = backup_info(repo, verify="full")
    assert info["backups"][0]["status"] == "corrupt"
    assert backup_id in info["backups"][0]["error"]
    assert backup_info(repo)["backups"][0]["status"] == "complete"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "20200101T000000Z-files-000000"}, "names another backup"),
        ({"format": 99}, "unknown manifest format 99"),
        ({"created": "last tuesday"}, "cannot read 'last tuesday' as a time"),
        ({"artifacts": [{"name": "../x", "size": 1, "sha256": "0"}]}, "artifact name '../x' is not allowed"),
        ({"artifacts": [{"name": "x"}]}, "lacks name, size or sha256"),
    ],
)
def test_invalid_manifests_are_refused(repo, change, message):
    manifest = store_backup(repo, "files", {"files.tar.gz": b"data"})
    repo.write_manifest(manifest["id"], dict(manifest, **change))
    with pytest.raises(BackupError, match=message):
        repo.manifest(manifest["id"])
    _good, bad = repo.catalog()
    assert [entry["id"] for entry in bad] == [manifest["id"]]


def test_manifest_missing_keys_is_refused(repo):
    manifest = store_backup(repo, "files", {"files.tar.gz": b"data"})
    broken = {key: value for key, value in manifest.items() if key not in ("kind", "size")}
    repo.write_manifest(manifest["id"], broken)
    with pytest.raises(BackupError, match="the manifest lacks kind, size"):
        repo.manifest(manifest["id"])


def test_delete(repo):
    keep = store_backup(repo, "files", {"files.tar.gz": b"keep"}, created=T0)
    doomed = store_backup(repo, "files", {"files.tar.gz": b"doomed", "more.bin": b"x"}, created=T0)
    repo.delete(doomed["id"])
    assert repo.list_ids() == [keep["id"]]
    with pytest.raises(BackupError, match="does not exist"):
        repo.manifest(doomed["id"])
    assert not repo.exists(doomed["id"], "more.bin")
    assert repo.verify(keep["id"]) == keep
    repo.delete(doomed["id"])  # deleting twice is harmless


# ----------------------------------------------------------------------------- S3 multipart transfers


@pytest.mark.integration
def test_s3_multipart_upload_and_streaming_download(moto):
    repository = moto.repository()  # the modules' defaults: 16 MiB parts
    backup_id = new_backup_id("postgres")
    chunks = [os.urandom(1024 * 1024) for index in range(17)] + [b"tail" * 1000]
    data = b"".join(chunks)
    assert len(data) > 16 * 1024 * 1024
    context = write_with_writer(repository, backup_id, "db.dump", chunks)
    assert (context.size, context.sha256) == (len(data), hashlib.sha256(data).hexdigest())

    key = repository._key(backup_id, "db.dump")
    head = repository.client.head_object(Bucket=repository.bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-2"), head["ETag"]
    first_part = repository.client.head_object(Bucket=repository.bucket, Key=key, PartNumber=1)
    assert first_part["PartsCount"] == 2
    assert first_part["ContentLength"] == 16 * 1024 * 1024

    manifest = manifest_for(
        backup_id, "postgres", [{"name": "db.dump", "size": context.size, "sha256": context.sha256}]
    )
    repository.write_manifest(backup_id, manifest)
    assert repository.verify(backup_id) == manifest

    class Sink(io.RawIOBase):
        """A non-seekable sink that records the order of writes."""

        def __init__(self):
            super().__init__()
            self.parts = []

        def write(self, block):
            self.parts.append(bytes(block))
            return len(block)

        def writable(self):
            return True

        def seekable(self):
            return False

    sink = Sink()
    writer = HashingWriter(sink)
    repository.download_artifact(backup_id, "db.dump", writer)
    assert writer.size == len(data)
    assert writer.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert b"".join(sink.parts) == data
    assert len(sink.parts) > 1

    with pytest.raises(FileNotFoundError):
        repository.download_artifact(backup_id, "absent.dump", HashingWriter(Sink()))


@pytest.mark.integration
def test_s3_write_artifact_multipart_with_small_parts(moto):
    repository = moto.repository(multipart_chunk_mb=5)
    backup_id = new_backup_id("files")
    data = os.urandom(11 * 1024 * 1024)
    size, sha256 = repository.write_artifact(backup_id, "files.tar", io.BytesIO(data))
    assert (size, sha256) == (len(data), hashlib.sha256(data).hexdigest())
    head = repository.client.head_object(Bucket=repository.bucket, Key=repository._key(backup_id, "files.tar"))
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]


@pytest.mark.integration
def test_s3_prefix_layout(moto):
    repository = moto.repository(prefix="/team/backups/")
    manifest = store_backup(repository, "files", {"files.tar.gz": b"abc"})
    keys = sorted(
        item["Key"] for item in repository.client.list_objects_v2(Bucket=repository.bucket).get("Contents", [])
    )
    assert keys == [f"team/backups/{manifest['id']}/files.tar.gz", f"team/backups/{manifest['id']}/{MANIFEST}"]
    assert repository.describe() == f"s3://{repository.bucket}/team/backups"
    repository.client.put_object(Bucket=repository.bucket, Key="team/backups/not-a-backup/x", Body=b"")
    repository.client.put_object(Bucket=repository.bucket, Key="team/other/x", Body=b"")
    assert repository.list_ids() == [manifest["id"]]


# ----------------------------------------------------------------------------- selection


@pytest.fixture
def three(repo):
    """Three files backups created one day apart, a postgres one, and an incomplete one (newest)."""
    manifests = [
        store_backup(repo, "files", {"files.tar.gz": f"v{index}".encode()}, created=T0 + datetime.timedelta(days=index))
        for index in range(3)
    ]
    store_backup(repo, "postgres", {"db.dump": b"pg"}, created=T0 + datetime.timedelta(days=5), source="db")
    put_raw(repo, new_backup_id("files", T0 + datetime.timedelta(days=9)), "files.tar.gz", b"no manifest")
    return manifests


def test_select_by_id_and_latest(repo, three):
    assert select_backup(repo, kind="files", backup_id=three[1]["id"]) == three[1]
    assert select_backup(repo, kind="files") == three[2]
    assert select_backup(repo, kind="files", backup_id="latest") == three[2]
    assert select_backup(repo, kind="files", source="app") == three[2]
    assert select_backup(repo)["kind"] == "postgres"


def test_select_latest_before(repo, three):
    between = T0 + datetime.timedelta(days=1, hours=12)
    assert select_backup(repo, kind="files", latest_before=between) == three[1]
    assert select_backup(repo, kind="files", latest_before="2026-11-21T13:00:00Z") == three[1]
    # strictly before: a backup created at exactly that time is not chosen
    assert select_backup(repo, kind="files", latest_before=three[1]["created"]) == three[0]
    # offsets and naive times (UTC)
    assert select_backup(repo, kind="files", latest_before="2026-11-22T13:30:00+01:00") == three[2]
    assert select_backup(repo, kind="files", latest_before="2026-11-22 11:59:59") == three[1]
    assert select_backup(repo, kind="files", latest_before="2030-01-01") == three[2]


def test_select_refusals(repo, three):
    with pytest.raises(BackupError, match=f"backup {three[0]['id']} is a files backup, not postgres"):
        select_backup(repo, kind="postgres", backup_id=three[0]["id"])
    with pytest.raises(
        BackupError,
        match=r"no complete files backup created before 2026-11-01T00:00:00Z in .* \(1 incomplete or unreadable",
    ):
        select_backup(repo, kind="files", latest_before="2026-11-01T00:00:00Z")
    with pytest.raises(BackupError, match="no complete files backup of elsewhere in"):
        select_backup(repo, kind="files", source="elsewhere")
    missing = new_backup_id("files", T0)
    with pytest.raises(BackupError, match=f"backup {missing} does not exist in "):
        select_backup(repo, kind="files", backup_id=missing)
    with pytest.raises(BackupError, match="cannot read 'soon' as a time: use ISO 8601"):
        select_backup(repo, kind="files", latest_before="soon")


def test_a_backup_id_that_does_not_exist_is_named_with_the_nearest_ones(repo, three):
    """A well-formed id with nothing stored under it does not exist: it is not 'incomplete (interrupted?)'."""
    between = new_backup_id("files", T0 + datetime.timedelta(days=1, hours=6))
    with pytest.raises(BackupError) as raised:
        select_backup(repo, kind="files", backup_id=between)
    message = str(raised.value)
    assert message.startswith(f"backup {between} does not exist in "), message
    assert "incomplete" not in message and "interrupted" not in message
    assert f"nearest: {three[1]['id']} (older), {three[2]['id']} (newer)" in message
    newest = sorted(i for i in repo.list_ids() if "-files-" in i)[-1]
    assert f"newest: {newest}" in message
    assert "\n" not in message

    with pytest.raises(BackupError, match=r"does not exist in .*; it holds no other backups at all"):
        select_backup(repo, backup_id=new_backup_id("other"))


def test_a_backup_with_artifacts_but_no_manifest_is_still_incomplete(repo, three):
    incomplete = [i for i in repo.list_ids() if i not in {m["id"] for m in three} and "-files-" in i]
    with pytest.raises(BackupError, match="has no manifest: it is incomplete"):
        select_backup(repo, kind="files", backup_id=incomplete[0])


def test_select_in_an_empty_repository(repo):
    with pytest.raises(BackupError, match=r"^no complete postgres backup in (local repository|s3://)[^(]*$"):
        select_backup(repo, kind="postgres")


def test_parse_time():
    expected = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
    assert parse_time("2026-11-23T12:00:00Z") == expected
    assert parse_time("2026-11-23t12:00:00z") == expected
    assert parse_time("2026-11-23 12:00:00") == expected
    assert parse_time("2026-11-23T13:00:00+01:00") == expected
    assert parse_time(datetime.datetime(2026, 11, 23, 12, 0)) == expected
    for bad in ("yesterday", "", "2026-13-01", "12:00 23/11/2026"):
        with pytest.raises(BackupError, match=re.escape(f"cannot read {bad!r} as a time: use ISO 8601, e.g.")):
            parse_time(bad)


# ----------------------------------------------------------------------------- retention


def test_prune_keep_count(local_repo):
    app = [
        store_backup(local_repo, "files", {"f": b"x"}, created=T0 + datetime.timedelta(hours=index))
        for index in range(5)
    ]
    other = store_backup(local_repo, "files", {"f": b"x"}, created=T0 - datetime.timedelta(days=3), source="other")
    pg = store_backup(local_repo, "postgres", {"d": b"x"}, created=T0 - datetime.timedelta(days=3))
    ids = [m["id"] for m in app]

    assert prune_plan(local_repo, "files", "app", None, None) == []
    assert prune_plan(local_repo, "files", "app", 2, None) == sorted(ids[:3])
    assert prune_plan(local_repo, "files", "app", 2, None, extra=1) == sorted(ids[:4])
    assert prune_plan(local_repo, "files", "app", 5, None) == []
    assert prune_plan(local_repo, "files", "app", 2, None, protect=ids[0]) == sorted(ids[1:3])

    assert prune(local_repo, "files", "app", 2, None, protect=None) == sorted(ids[:3])
    assert sorted(local_repo.list_ids()) == sorted([*ids[3:], other["id"], pg["id"]])


def test_prune_keep_days(local_repo):
    now = datetime.datetime.now(datetime.UTC)
    ages = [40, 20, 5, 1]
    made = [
        store_backup(local_repo, "files", {"f": b"x"}, created=now - datetime.timedelta(days=age, minutes=1))
        for age in ages
    ]
    ids = [m["id"] for m in made]
    assert prune_plan(local_repo, "files", "app", None, 10) == sorted(ids[:2])
    assert prune_plan(local_repo, "files", "app", None, 30) == [ids[0]]
    assert prune_plan(local_repo, "files", "app", None, 60) == []
    # both rules: a backup goes when either says so
    assert prune_plan(local_repo, "files", "app", 3, 30) == [ids[0]]
    assert prune_plan(local_repo, "files", "app", 1, 30) == sorted(ids[:3])
    assert prune(local_repo, "files", "app", None, 10, protect=ids[1]) == [ids[0]]
    assert sorted(local_repo.list_ids()) == sorted(ids[1:])


def test_take_backup_applies_retention(local_repo, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    old = store_backup(local_repo, "files", {"files.tar.gz": b"x"}, created=T0, source="src")

    plan = take_backup(local_repo, "files", check_mode=True, path=str(source), keep_count=1)
    assert plan["changed"] is True
    assert plan["pruned"] == [old["id"]]
    assert local_repo.list_ids() == [old["id"]]

    results = [take_backup(local_repo, "files", path=str(source), keep_count=2) for index in range(3)]
    assert results[0]["pruned"] == []
    assert results[1]["pruned"] == [old["id"]]
    assert results[2]["pruned"] == [results[0]["backup"]["id"]]
    assert sorted(local_repo.list_ids()) == sorted(r["backup"]["id"] for r in results[1:])
    for result in results[1:]:
        assert local_repo.verify(result["backup"]["id"]) == result["backup"]


# ----------------------------------------------------------------------------- authenticated manifests

KEY = "mttr-unit-test-repository-key-3f9a01"
OTHER_KEY = "a-different-repository-key-77c2e0"


def signed_backup(repo, tmp_path, name="src", text="data"):
    source = tmp_path / name
    source.mkdir(exist_ok=True)
    (source / "a.txt").write_text(text)
    return take_backup(repo.use_key(KEY), "files", path=str(source), source_name="app")["backup"]


def test_a_signed_manifest_verifies_with_its_key(repo, tmp_path):
    manifest = signed_backup(repo, tmp_path)
    auth = manifest["authentication"]
    assert auth["alg"] == "hmac-sha256" and len(auth["hmac"]) == 64 and auth["key_id"]
    raw = repo.read_bytes(manifest["id"], MANIFEST)
    assert KEY.encode() not in raw
    assert repo.manifest(manifest["id"]) == manifest
    assert select_backup(repo, kind="files")["id"] == manifest["id"]
    info = backup_info(repo, verify="full")
    assert [entry["status"] for entry in info["backups"]] == ["verified"]
    assert info["backups"][0]["authenticated"] is True
    assert repo.warnings == []


def tamper_rehashed(repo, manifest):
    """Replace the artifact and fix its size and sha256 in the manifest, keeping the old HMAC (no key needed)."""
    forged = b"forged archive bytes"
    name = manifest["artifacts"][0]["name"]
    put_raw(repo, manifest["id"], name, forged)
    artifact = dict(manifest["artifacts"][0], size=len(forged), sha256=hashlib.sha256(forged).hexdigest())
    forged_manifest = dict(manifest, artifacts=[artifact], size=len(forged))
    put_raw(repo, manifest["id"], MANIFEST, json.dumps(forged_manifest).encode())


def test_a_tampered_manifest_rehashed_is_refused(repo, tmp_path):
    older = signed_backup(repo, tmp_path, "older", "older data")
    manifest = signed_backup(repo, tmp_path)
    tamper_rehashed(repo, manifest)
    with pytest.raises(AuthenticationError, match=f"backup {manifest['id']}: its manifest's HMAC does not verify"):
        repo.manifest(manifest["id"])
    target = tmp_path / "target"
    with pytest.raises(AuthenticationError, match="HMAC does not verify"):
        restore(repo, "files", path=str(target), backup=manifest["id"])
    assert not target.exists()
    # latest skips it, and says so
    assert select_backup(repo, kind="files")["id"] == older["id"]
    info = backup_info(repo, verify="full")
    statuses = {entry["id"]: entry["status"] for entry in info["backups"]}
    assert statuses == {older["id"]: "verified", manifest["id"]: "unauthenticated"}
    assert info["latest"] == older["id"]
    result = restore(repo, "files", path=str(target))
    assert result["backup_id"] == older["id"]
    assert any(manifest["id"] in warning and "skipped" in warning for warning in result["warnings"])


def test_a_manifest_signed_with_another_key_is_refused(repo, tmp_path):
    manifest = signed_backup(repo, tmp_path)
    repo.use_key(OTHER_KEY)
    with pytest.raises(AuthenticationError) as raised:
        repo.manifest(manifest["id"])
    message = str(raised.value)
    assert "signed with another key" in message
    assert manifest["authentication"]["key_id"] in message
    assert KEY not in message and OTHER_KEY not in message


def test_an_unsigned_manifest_is_refused_when_a_key_is_given(repo):
    manifest = store_backup(repo, "files", {"files.tar.gz": b"data"})
    repo.use_key(KEY)
    with pytest.raises(AuthenticationError, match="has no HMAC: it cannot be authenticated with the repository key"):
        repo.manifest(manifest["id"])
    with pytest.raises(BackupError, match=r"no complete files backup .*\(1 .*unauthenticated"):
        select_backup(repo, kind="files")
    repo.use_key(KEY, allow_unauthenticated=True)
    assert repo.manifest(manifest["id"])["id"] == manifest["id"]
    assert any("has no HMAC" in warning for warning in repo.warnings)


def test_a_signed_manifest_read_without_a_key_cannot_be_authenticated(repo, tmp_path):
    manifest = signed_backup(repo, tmp_path)
    repo.use_key(None)
    with pytest.raises(AuthenticationError, match=r"is signed .* but no repository key was given: it cannot be"):
        repo.manifest(manifest["id"])
    repo.use_key(None, allow_unauthenticated=True)
    assert repo.manifest(manifest["id"])["id"] == manifest["id"]
    assert any("not authenticated" in warning for warning in repo.warnings)


def test_a_stripped_hmac_is_refused_with_the_key(repo, tmp_path):
    manifest = signed_backup(repo, tmp_path)
    stripped = {key: value for key, value in manifest.items() if key != "authentication"}
    put_raw(repo, manifest["id"], MANIFEST, json.dumps(stripped).encode())
    with pytest.raises(AuthenticationError, match="has no HMAC"):
        repo.manifest(manifest["id"])


def test_every_field_of_the_manifest_is_covered(repo, tmp_path):
    manifest = signed_backup(repo, tmp_path)
    for change in ({"tags": {"reason": "forged"}}, {"created": "2020-01-01T00:00:00Z"}, {"source": {"name": "x"}}):
        put_raw(repo, manifest["id"], MANIFEST, json.dumps(dict(manifest, **change)).encode())
        with pytest.raises(AuthenticationError, match="HMAC does not verify"):
            repo.manifest(manifest["id"])
    put_raw(repo, manifest["id"], MANIFEST, json.dumps(manifest).encode())
    assert repo.manifest(manifest["id"]) == manifest


def test_resolve_key(tmp_path):
    assert resolve_key(None, None, {}) is None
    assert resolve_key(KEY, None, {}) == KEY.encode()
    assert resolve_key(None, None, {"MTTR_BACKUP_KEY": KEY}) == KEY.encode()
    key_file = tmp_path / "backup.key"
    key_file.write_text(KEY + "\n")
    assert resolve_key(None, str(key_file), {"MTTR_BACKUP_KEY": OTHER_KEY}) == KEY.encode()
    assert resolve_key(KEY, None, {"MTTR_BACKUP_KEY": OTHER_KEY}) == KEY.encode()
    with pytest.raises(BackupError, match=r"cannot read repository_key_file .*nowhere"):
        resolve_key(None, str(tmp_path / "nowhere"), {})
    with pytest.raises(BackupError, match="too short: use at least 16") as raised:
        resolve_key("abc123", None, {})
    assert "abc123" not in str(raised.value)


def test_finding_a_backup_refuses_unauthentic_ones(repo, tmp_path):
    """What the backup lookup runs: the newest authentic backup, or why there is none."""
    older = signed_backup(repo, tmp_path, "older", "older data")
    newer = signed_backup(repo, tmp_path)
    tamper_rehashed(repo, newer)
    assert find_backup(repo.use_key(KEY), kind="files") == older["id"]
    assert find_backup(repo.use_key(KEY), kind="files", verify="full") == older["id"]
    with pytest.raises(BackupError, match=r"no complete backup matches .*unauthenticated.*cannot be authenticated"):
        find_backup(repo.use_key(None))
    with pytest.raises(BackupError) as raised:
        find_backup(repo.use_key(OTHER_KEY))
    assert "signed with another key" in str(raised.value) and OTHER_KEY not in str(raised.value)
    # allowed unauthenticated, the hashes alone decide: the re-hashed forgery passes them
    assert find_backup(repo.use_key(None, allow_unauthenticated=True)) == newer["id"]
    with pytest.raises(BackupError, match="no verified backup matches"):
        find_backup(repo.use_key(KEY), latest_before=older["created"], verify="full")
