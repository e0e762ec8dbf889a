"""step-ca's `addUserPublicKey`: a second certificate that creates the user on first login.

For a user certificate with one principal (or two, the second an email), the
second certificate has principal `ssh.addUserPrincipal` (default
`provisioner`), key id `<principal>-<addUserPrincipal>` and the critical option
`force-command` = `ssh.addUserCommand` with `<principal>` replaced. That
command runs in a shell on the hosts, so only a POSIX user name may be put in
it (step-ca does not check; Cirrus refuses anything else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import BadRequest
from shared.ssh.certificate import USER_CERT, SSHCertificate

DEFAULT_ADD_USER_PRINCIPAL = "provisioner"
DEFAULT_ADD_USER_COMMAND = "sudo useradd -m <principal>; nc -q0 localhost 22"
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")


@dataclass(frozen=True, slots=True)
class AddUserFields:
    """What the add-user certificate holds besides its key and the subject's validity."""

    key_id: str
    principals: tuple[str, ...]
    critical_options: dict[str, str]


def add_user_fields(subject: SSHCertificate, *, principal_name: str, command: str) -> AddUserFields:
    """The add-user certificate's fields for `subject`.

    Raises:
        BadRequest: not a user certificate with one principal (or a second that is an email),
        or a principal that is not a plain user name.
    """
    principals = subject.principals
    if subject.cert_type != USER_CERT:
        raise BadRequest("certificate is not a user certificate")
    if not principals or len(principals) > 2 or (len(principals) == 2 and "@" not in principals[1]):
        raise BadRequest("certificate does not have only one principal")
    principal = principals[0]
    if not _USER_NAME.match(principal):
        raise BadRequest("the principal is not a user name that can be added")
    return AddUserFields(
        key_id=f"{principal}-{principal_name}",
        principals=(principal_name,),
        critical_options={"force-command": command.replace("<principal>", principal)},
    )
