# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_user:
    description: The PostgreSQL role to connect as. Defaults to libpq's (the operating system user).
    type: str
  login_password:
    description: Its password.
    type: str
requirements:
  - psycopg >= 3.1 on the host running the module
"""
