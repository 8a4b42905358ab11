# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  repository:
    description: Where the backups live.
    type: dict
    required: true
    suboptions:
      type:
        description: C(local) for a directory on the host, C(s3) for an S3 bucket or S3-compatible endpoint.
        type: str
        required: true
        choices: [local, s3]
      path:
        description: (local) The repository directory. Required for C(local).
        type: path
      bucket:
        description: (s3) The bucket. Required for C(s3).
        type: str
      prefix:
        description: (s3) Key prefix under which backups are kept.
        type: str
        default: ""
      endpoint_url:
        description: (s3) An S3-compatible endpoint instead of AWS's own.
        type: str
      region:
        description: (s3) The region. Defaults to boto3's usual configuration chain.
        type: str
      access_key:
        description:
          - (s3) Access key id.
          - Defaults to boto3's usual credential chain (environment, profile, instance role).
        type: str
      secret_key:
        description: (s3) Secret access key.
        type: str
      session_token:
        description: (s3) Session token for temporary credentials.
        type: str
      profile:
        description: (s3) A profile of the AWS configuration files to take the credentials and region from.
        type: str
      validate_certs:
        description: (s3) Verify the endpoint's TLS certificate.
        type: bool
        default: true
      multipart_chunk_mb:
        description: (s3) Part size of multipart uploads and downloads, in MiB (at least 5).
        type: int
        default: 16
      max_concurrency:
        description: (s3) Parallel part transfers.
        type: int
        default: 8
  kind:
    description:
      - C(files) backs up a directory tree as one tar archive; C(postgres) backs up one database with
        C(pg_dump -Fc).
    type: str
    choices: [files, postgres]
  repository_key:
    description:
      - A secret key (at least 16 bytes) that authenticates the repository's manifests. A backup taken with a
        key carries an HMAC-SHA256 over its whole manifest; reading with the key refuses a manifest whose
        HMAC does not verify (changed after it was written, even with its hashes recomputed, or signed with
        another key) and one without an HMAC.
      - Without a key, a signed manifest cannot be authenticated and is refused unless
        O(allow_unauthenticated=true); unsigned manifests are read on their hashes alone, as before.
      - Defaults to the first line of O(repository_key_file), else the E(MTTR_BACKUP_KEY) environment variable.
        The key never appears in results or logs.
    type: str
  repository_key_file:
    description:
      - A file whose first line is the repository key (see O(repository_key)). Keep it mode 0600.
    type: path
  allow_unauthenticated:
    description:
      - Use a manifest that cannot be authenticated on its hashes alone, with a warning - a signed one read
        without a key, or an unsigned one read with a key (backups taken before a key was set).
      - A manifest whose HMAC does not verify is refused whatever this says.
    type: bool
    default: false
requirements:
  - boto3 on the host, for S3 repositories
  - psycopg >= 3.1 and PostgreSQL's client tools (pg_dump, pg_restore) on the host, for kind postgres
  - GNU tar on the host, to restore kind files (the archive is checked member by member in Python, then written by tar)
"""

    DATABASE = r"""
options:
  database:
    description: (postgres) The database. Required for O(kind=postgres).
    type: str
  login_host:
    description: (postgres) Host of the PostgreSQL server.
    type: str
    default: 127.0.0.1
  port:
    description: (postgres) Port of the PostgreSQL server.
    type: int
    default: 5432
  maintenance_db:
    description:
      - (postgres) Database to connect to for creating, renaming and dropping databases.
      - O(login_user) must be allowed to create, rename and drop databases.
    type: str
    default: postgres
  pg_bin:
    description: (postgres) Directory of pg_dump and pg_restore. Defaults to the PATH.
    type: path
"""
