# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  region:
    description: AWS region. Defaults to boto3's configuration chain (environment, profile).
    type: str
  endpoint_url:
    description: An AWS-compatible endpoint instead of AWS's own (a moto server, a private endpoint).
    type: str
  access_key:
    description: Access key id. Defaults to boto3's credential chain (environment, profile, instance role).
    type: str
  secret_key:
    description: Secret access key.
    type: str
  session_token:
    description: Session token, for temporary credentials.
    type: str
  profile:
    description: A profile of the AWS configuration files to take the credentials and region from.
    type: str
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
notes:
  - AWS calls are retried in botocore's standard mode (5 attempts) with a 5 s connect timeout.
requirements:
  - boto3 on the host, for the AWS calls
"""
