# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to reach AWS (or an AWS-compatible endpoint such as moto's server): the options, the client.

Every module that talks to AWS declares ``aws_argument_spec()`` (documented by the ``mttr.recovery.aws``
doc fragment; the backup modules nest the same options in their ``repository``) and gets its clients from
``client(service, options)``: the credentials resolved the same way (options, else boto3's chain: the
environment, a profile, an instance role), the same retries (standard mode, 5 attempts) and timeouts.
boto3 is imported only when a client is asked for: importing it costs ~0.4 s.
"""

from __future__ import annotations

import sys
import traceback

RETRIES = {"max_attempts": 5, "mode": "standard"}


def aws_argument_spec():
    return {
        "region": {"type": "str"},
        "endpoint_url": {"type": "str"},
        "access_key": {"type": "str", "no_log": True},
        "secret_key": {"type": "str", "no_log": True},
        "session_token": {"type": "str", "no_log": True},
        "profile": {"type": "str"},
        "validate_certs": {"type": "bool", "default": True},
    }


def load_boto3():
    """(boto3, botocore.config) or None, and the import error's traceback."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions  # loaded here, so botocore_errors() finds its classes
    except ImportError:
        return None, traceback.format_exc()
    return (boto3, botocore.config), None


def botocore_errors():
    """botocore's error classes once it is loaded (an AWS error can only come from it after that), else ()."""
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is None:
        return ()
    return (botocore_exceptions.BotoCoreError, botocore_exceptions.ClientError)


class AwsUnavailable(Exception):
    """boto3 is not installed where the module runs; ``traceback`` has the import error."""

    def __init__(self, traceback_text):
        super().__init__("boto3")
        self.traceback = traceback_text


def client(service, options):
    """A boto3 client for ``service`` from the AWS ``options`` (see aws_argument_spec; absent ones fall back
    to boto3's own chain). Raises AwsUnavailable without boto3."""
    libraries, error = load_boto3()
    if libraries is None:
        raise AwsUnavailable(error)
    boto3, botocore_config = libraries
    session = boto3.session.Session(profile_name=options.get("profile") or None)
    return session.client(
        service,
        endpoint_url=options.get("endpoint_url") or None,
        region_name=options.get("region") or None,
        aws_access_key_id=options.get("access_key") or None,
        aws_secret_access_key=options.get("secret_key") or None,
        aws_session_token=options.get("session_token") or None,
        verify=options.get("validate_certs", True),
        config=botocore_config.Config(retries=dict(RETRIES), connect_timeout=5),
    )
