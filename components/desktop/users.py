"""A desktop's accounts, declared once: the component's users and the stack file's (which names the password's
secret config key instead of holding it) are this model."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

import pulumi
from pydantic import AfterValidator, Field, PlainValidator

from ..kinds import Settings, Wording, rule

# Accounts the golden image (or any Debian) already has: a desktop user must not take them over.
RESERVED_LOGINS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "_apt", "messagebus", "sshd", "systemd-network",
    "systemd-resolve", "systemd-timesync", "polkitd", "avahi", "dnsmasq", "libvirt-qemu"})
# An OpenSSH public key line (options and comment allowed), as the seed templates accept it.
_PUBLIC_KEY = (r"(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)"
               r"|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+=*(\s|$)")
_LOGIN = r"^[a-z_][a-z0-9_-]{0,31}$"
_GROUP = r"^[a-z_][a-z0-9_-]{0,31}$"
_EMAIL = r"^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
_NOT_A_KEY = "is not an OpenSSH public key ('ssh-ed25519 AAAA... comment'); value not shown"


def _password(value: Any) -> Any:
    """A password as Pulumi holds one: a string or an Output (a secret); never shown in a problem."""
    if isinstance(value, (str, pulumi.Output)):
        return value
    raise ValueError("must be a string or a Pulumi secret (pulumi.Output), value not shown")


Login = Annotated[str, Field(pattern=_LOGIN),
                  rule(lambda v: f"{v!r} is not a usable login name: it is a system account"
                       if v in RESERVED_LOGINS else None),
                  Wording(invalid="{input} is not a usable login name: use lowercase letters, digits, '-' and "
                                  "'_', starting with a letter or '_', at most 32 characters")]
Group = Annotated[str, Field(pattern=_GROUP),
                  Wording(invalid="{input} is not a valid group name: use lowercase letters, digits, '-' and '_', "
                                  "starting with a letter or '_'")]
Groups = Annotated[list[Group], AfterValidator(lambda groups: list(dict.fromkeys(groups))),
                   Wording(expected="a list of group names")]
SshKey = Annotated[str, Field(pattern=_PUBLIC_KEY), rule(lambda v: _NOT_A_KEY if "\n" in v.strip() else None),
                   AfterValidator(str.strip), Wording(invalid=_NOT_A_KEY)]
SshKeys = Annotated[list[SshKey],
                    Wording(expected="a list of OpenSSH public keys ('ssh-ed25519 AAAA... comment')")]
Email = Annotated[str, Field(pattern=_EMAIL, max_length=254),
                  Wording(invalid="{input} is not an email address (name@example.org)")]
Password = Annotated[Any, PlainValidator(_password, json_schema_input_type=str)]


class DesktopUser(Settings):
    """An account on a desktop; the first is the one vdesk logs in as."""
    noun: ClassVar[str] = "user"
    name: Login = Field(description="The login name.")
    ssh_authorized_keys: SshKeys = Field([], description="OpenSSH public keys that may log in as this user.")
    groups: Groups = Field([], description="Supplementary groups.")
    password: Password | None = Field(None, repr=False, description="The password, a Pulumi secret: it reaches "
                                                                    "the guest and the host's portal only as a hash.")
    email: Email | None = Field(None, description="Their address at the organisation's identity provider: signed "
                                                  "in to the host's portal with OpenID Connect, the identity whose "
                                                  "`email` claim this is gets this stack's desktops of this user.")

    def __init__(self, name: str | None = None, /, **fields):
        """`DesktopUser("ada", groups=["audio"])`: the login name may come first, unnamed."""
        super().__init__(**({"name": name} if name is not None else {}), **fields)

    __init__.__pydantic_base_init__ = True     # (validating a mapping is pydantic's own: see DesktopArgs)
