"""The template variable contract: what ``render_seed`` accepts, checked before any template sees it.

The ``variables`` passed to ``render_seed`` are SeedVariables below: every field is declared once, with its
type, default, check and description (``SeedVariables.model_json_schema()`` gives them as a JSON Schema).

Templates then see these names, normalized (defaults applied, MACs lower
case, sudo as its rule or None, password_hash None when absent), plus
``profile`` (the profile name), ``ssh_pwauth`` (true only if some user has a
password hash) and, per interface, ``name`` ("eth0", "eth1", ... in order).
Unknown variables are errors, so a typo is never silently ignored.

Pydantic's locations become the paths (``users[0].sudo``) and every problem is reported at once. The few
rules that tie two fields together (a duplicate name or MAC, an fqdn that must start with the hostname, a key
pair that must match, autologin naming a user) are checked on the input beside the model, so they are
reported even when other fields are wrong.
"""

from __future__ import annotations

import io
import ipaddress
import re
from typing import Annotated, Any, Callable

import paramiko
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from . import CloudInitError

DEFAULT_SUDO_RULE = "ALL=(ALL) NOPASSWD:ALL"
DEFAULT_SHELL = "/bin/bash"
INTERFACE_NAME = "eth{index}"

HOSTNAME_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")  # user and group names
SHELL_RE = re.compile(r"^/[^\s:]*$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
CRYPT_HASH_RE = re.compile(r"^\$(6|5|y|gy|2b|2y)\$([./0-9A-Za-z=,]+\$)+[./0-9A-Za-z]+$")  # $id$[param$]salt$hash
PUBLIC_KEY_TYPE_RE = re.compile(
    r"(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+=*(\s|$)"
)
PRIVATE_KEY_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
PRIVATE_KEY_END = "-----END OPENSSH PRIVATE KEY-----"
ED25519_TYPE = "ssh-ed25519"
SHARE_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,35}$")
MOUNTPOINT_RE = re.compile(r"^/[A-Za-z0-9/_.-]{1,200}$")
HOME_DEVICE_RE = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9/_.:-]{0,200}$")
SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ACCOUNT_HINT = "must be a Linux account name: [a-z_][a-z0-9_-]*, at most 32 characters"


# --- one check per kind of value: each raises the problem in vdesk's words --------------------------------

def _fail(message: str):
    raise PydanticCustomError("vdesk", "{message}", {"message": message})


def _string(value) -> str:
    if not isinstance(value, str):
        _fail(f"must be a string, not {type(value).__name__}")
    if not value:
        _fail("must not be empty")
    return value


def _matching(pattern: re.Pattern, hint: str) -> Callable[[Any], str]:
    def check(value) -> str:
        text = _string(value)
        if not pattern.match(text):
            _fail(f"{hint}; got {text!r}")
        return text
    return check


def _flag(value) -> bool | None:
    """true, false or unset (None: the field's default)."""
    if value is not None and not isinstance(value, bool):
        _fail(f"must be true or false, not {type(value).__name__}")
    return value


def _as_list(value) -> list:
    if not isinstance(value, (list, tuple)):
        _fail(f"must be a list, not {type(value).__name__}")
    return list(value)


def _as_mapping(value) -> dict:
    if not isinstance(value, dict):
        _fail(f"must be a mapping, not {type(value).__name__}")
    return value


_account = _matching(ACCOUNT_RE, _ACCOUNT_HINT)
_hostname = _matching(HOSTNAME_RE, "must be one DNS label: letters, digits and inner '-', at most 63 characters")


def _fqdn_shape(value) -> str:
    text = _string(value)
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or len(labels) < 2 or not all(HOSTNAME_RE.match(label) for label in labels):
        _fail(f"must be a dotted DNS name such as 'host.example.org'; got {text!r}")
    return text.rstrip(".")


def _domain(value) -> str:
    text = _string(value)
    if not all(HOSTNAME_RE.match(label) for label in text.rstrip(".").split(".")):
        _fail(f"must be a DNS domain; got {text!r}")
    return text


def _ip(*, interface: bool = False, version: int | None = None) -> Callable[[Any], str]:
    def check(value) -> str:
        text = _string(value)
        try:
            if interface:
                if "/" not in text:
                    raise ValueError("a prefix length is required")
                parsed = ipaddress.ip_interface(text)
            else:
                parsed = ipaddress.ip_address(text)
        except ValueError as exc:
            kind = "an address with prefix length (CIDR)" if interface else "an IP address"
            _fail(f"must be {kind}: {exc}")
        if version and parsed.version != version:
            _fail(f"must be an IPv{version} address; got {text!r}")
        return str(parsed)
    return check


def _password_hash(value) -> str:
    """A crypt hash; the value is never echoed, in case it is a plaintext secret."""
    text = _string(value)
    if not CRYPT_HASH_RE.match(text):
        _fail("must be a crypt hash ($6$..., $y$...), never a plaintext password: use hash_password()")
    return text


def _authorized_key(value) -> str:
    text = _string(value).strip()
    if "\n" in text or "\r" in text or "\0" in text:
        _fail("must be a single line: one key per list entry")
    if not PUBLIC_KEY_TYPE_RE.search(text):
        _fail("does not look like an OpenSSH public key ('ssh-ed25519 AAAA... comment')")
    return text


def _mac(value) -> str:
    return _matching(MAC_RE, "must be a MAC address like '52:54:00:12:34:56'")(_string(value).lower())


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _list_of(check: Callable[[Any], Any], *, default_when_none: bool = False):
    """A list (or tuple) whose items each pass `check`; None is the empty list when default_when_none."""
    none = (lambda value: [] if value is None else value) if default_when_none else (lambda value: value)
    return Annotated[list[Annotated[Any, AfterValidator(check)]], BeforeValidator(lambda v: _as_list(none(v)))]


def _valid(check: Callable[[Any], Any], value) -> Any:
    """`check`'s answer for value, or None if it has a problem (for the rules that tie fields together)."""
    try:
        return check(value)
    except PydanticCustomError:
        return None


def _checked(check):
    return Annotated[Any, AfterValidator(check)]


# --- the contract as models ---------------------------------------------------------------------------

class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SeedUser(_Part):
    """A Linux account the seed creates."""

    name: _checked(_account) = Field(description="a Linux user name ([a-z_][a-z0-9_-]*)")
    ssh_authorized_keys: _list_of(_authorized_key) = Field(
        description="one OpenSSH public key per entry (options and comments allowed, no newlines); may be empty "
                    "only when password_hash is set")
    groups: _list_of(_matching(ACCOUNT_RE, _ACCOUNT_HINT.replace("account", "group"))) = Field(
        [], description="supplementary groups")
    sudo: _checked(_flag) = Field(None, description='default true: "ALL=(ALL) NOPASSWD:ALL"; false: no sudo rule')
    shell: _checked(_matching(SHELL_RE, "must be an absolute path")) = Field(DEFAULT_SHELL,
                                                                          description="an absolute path")
    password_hash: _checked(_optional(_password_hash)) = Field(
        None, description="a crypt hash only ($6$, $5$, $y$, $gy$, $2b$/$2y$; see hash_password), never plaintext; "
                          "the account stays locked without it")

    def context(self) -> dict:
        return {"name": self.name, "ssh_authorized_keys": list(self.ssh_authorized_keys), "groups": list(self.groups),
                "sudo": None if self.sudo is False else DEFAULT_SUDO_RULE, "shell": self.shell,
                "password_hash": self.password_hash}


class HostKeys(_Part):
    """The desktop's pinned SSH host key pair."""

    ed25519_private: _checked(_string) = Field(None, description="unencrypted OpenSSH private key text")
    ed25519_public: _checked(_string) = Field(None, description='"ssh-ed25519 AAAA... [comment]", matching it')

    @field_validator("ed25519_private")
    @classmethod
    def _one_block(cls, value: str) -> str:
        return value.strip() + "\n"

    @field_validator("ed25519_public")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())


def _nameservers(value):
    if isinstance(value, (list, tuple)):
        value = {"addresses": value}
    if not isinstance(value, dict):
        _fail(f"must be a list of addresses or a mapping, not {type(value).__name__}")
    return value


class Nameservers(_Part):
    addresses: _list_of(_ip()) = Field([], description="IP addresses")
    search: _list_of(_domain) = Field([], description="DNS domains")

    def context(self) -> dict | None:
        found = {key: list(value) for key, value in (("addresses", self.addresses), ("search", self.search)) if value}
        return found or None


class SeedInterface(_Part):
    """One NIC, matched by its MAC."""

    mac: _checked(_mac) = Field(description='"52:54:00:12:34:56" (any case; unique)')
    dhcp4: _checked(_flag) = Field(None, description="default true")
    addresses: _list_of(_ip(interface=True)) = Field([], description='CIDRs, e.g. "192.0.2.10/24"')
    gateway4: _checked(_optional(_ip(version=4))) = Field(None, description="an IPv4 address")
    nameservers: Annotated[Nameservers | None, BeforeValidator(_optional(_nameservers))] = Field(
        None, description="a list of IP addresses, or a mapping {addresses: [ip, ...], search: [domain, ...]}")

    def context(self, index: int) -> dict:
        return {"mac": self.mac, "dhcp4": self.dhcp4 is not False, "addresses": list(self.addresses),
                "gateway4": self.gateway4, "nameservers": self.nameservers.context() if self.nameservers else None,
                "name": INTERFACE_NAME.format(index=index)}


def _share_readonly(value) -> bool:
    if not isinstance(value, bool):
        _fail("must be true or false")
    return value


class Share(_Part):
    """A virtiofs share mounted in the guest."""

    tag: _checked(_matching(SHARE_TAG_RE, "must be lowercase letters, digits, '-'")) = Field(
        None, description='the virtiofs tag (lowercase letters, digits, "-")')
    mountpoint: _checked(_matching(MOUNTPOINT_RE, "must be an absolute path of letters, digits, '/', '_', '.', '-'")) \
        = Field(None, description="an absolute path in the guest")
    readonly: _checked(_share_readonly) = Field(True, description="default true")


class GraphicalSession(_Part):
    """The image boots to a display manager: which X session, and who it logs in by itself."""

    session: _checked(_matching(SESSION_RE, "must name an X session such as 'xfce'")) = Field(
        None, description='the X session to start ("xfce"; a file in /usr/share/xsessions of the image)')
    autologin: Any = Field(None, description="a user (one of users) the display manager logs in at boot, "
                                             "without a password; None: nobody")


class SeedVariables(_Part):
    """What `render_seed` accepts: the declared variables of one desktop's seed."""

    hostname: _checked(_hostname) = Field(description='one DNS label (letters, digits, "-"; at most 63)')
    instance_id: _checked(_matching(INSTANCE_ID_RE, "must be letters, digits, '.', '_', ':' or '-'")) = Field(
        description='NoCloud instance-id; pass a fresh one per clone (letters, digits, ".", "_", ":", "-")')
    users: Annotated[list[SeedUser], BeforeValidator(_as_list)] = Field(min_length=1, description="at least one")
    host_keys: Annotated[HostKeys, BeforeValidator(_as_mapping)] = Field(description="the SSH host key pair")
    interfaces: Annotated[list[SeedInterface], BeforeValidator(_as_list)] = Field(min_length=1,
                                                                                  description="at least one")
    fqdn: _checked(_optional(_fqdn_shape)) = Field(None, description='"<hostname>.<domain>"')
    packages: _list_of(_matching(PACKAGE_RE, "must be a Debian package name (optionally name=version)"),
                       default_when_none=True) = Field([], description="extra Debian packages (name or name=version)")
    extra: Annotated[dict, BeforeValidator(lambda v: {} if v is None else _as_mapping(v))] = Field(
        {}, description='profile-specific values (keys are str); desktop reads "timezone", office "paper_size"')
    home_device: _checked(_optional(_matching(HOME_DEVICE_RE, "must be a block device path under /dev"))) = Field(
        None, description="a block device (/dev/...) holding /home: formatted only when it has no filesystem yet, "
                          "mounted at /home before the users are made")
    shares: Annotated[list[Share], BeforeValidator(lambda v: [] if v is None else _as_list(v))] = Field(
        [], description="virtiofs shares")
    graphical_session: Annotated[GraphicalSession | None, BeforeValidator(_optional(_as_mapping))] = Field(
        None, description="the image boots to a display manager")

    def context(self) -> dict:
        """What the templates see: defaults applied, plus ssh_pwauth (true only if some user has a password)."""
        users = [user.context() for user in self.users]
        session = self.graphical_session
        return {
            "hostname": self.hostname, "instance_id": self.instance_id, "fqdn": self.fqdn,
            "users": users, "host_keys": self.host_keys.model_dump(),
            "interfaces": [nic.context(index) for index, nic in enumerate(self.interfaces)],
            "packages": list(self.packages), "extra": dict(self.extra), "home_device": self.home_device,
            "shares": [share.model_dump() for share in self.shares],
            "graphical_session": {"session": session.session, "autologin": session.autologin} if session else None,
            "ssh_pwauth": any(user["password_hash"] for user in users),
        }


# The order problems are listed in: each model's fields as the contract reads, unknown fields first.
_ORDER = {
    SeedVariables: ("hostname", "instance_id", "host_keys", "fqdn", "users", "interfaces", "packages", "extra",
                    "shares", "home_device", "graphical_session"),
    SeedUser: ("name", "ssh_authorized_keys", "groups", "password_hash", "sudo", "shell"),
    SeedInterface: ("mac", "addresses", "gateway4", "nameservers", "dhcp4"),
    Share: ("readonly", "tag", "mountpoint"),
}
_PARTS = {(): SeedVariables, ("users",): SeedUser, ("host_keys",): HostKeys, ("interfaces",): SeedInterface,
          ("interfaces", "nameservers"): Nameservers, ("shares",): Share, ("graphical_session",): GraphicalSession}
_REQUIRED = tuple(name for name, field in SeedVariables.model_fields.items() if field.is_required())
_LAST = 1 << 20


def normalize_variables(variables) -> dict:
    """Check ``variables`` against the contract; return them with defaults applied.

    Raises ``CloudInitError`` with every problem found, not just the first.
    """
    if not isinstance(variables, dict):
        raise CloudInitError([("variables", f"must be a mapping, not {type(variables).__name__}")])
    problems: list[tuple[tuple, str, str]] = []
    model = None
    try:
        model = SeedVariables.model_validate(variables)
    except ValidationError as exc:
        problems += [_problem(error) for error in exc.errors()]
    problems += _rules(variables)
    if problems:
        raise CloudInitError([(path, message) for _, path, message in sorted(problems, key=lambda p: p[0])])
    return model.context()


def _path(loc: tuple) -> str:
    path = ""
    for key in loc:
        path = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
    return path


def _part(loc: tuple) -> type[BaseModel] | None:
    return _PARTS.get(tuple(key for key in loc if isinstance(key, str)))


def _order(loc: tuple) -> tuple:
    """Where a problem at loc is listed: by field as _ORDER says, list items in order, unknown fields first."""
    key, walked = [], []
    for item in loc:
        if isinstance(item, int):
            key.append(item)
            continue
        part = _part(tuple(walked))
        order = (_ORDER.get(part) or tuple(part.model_fields)) if part else ()
        key.append(order.index(item) + 1 if item in order else 0)
        walked.append(item)
    return tuple(key)


def _problem(error: dict) -> tuple[tuple, str, str]:
    loc = tuple(error["loc"])
    kind, where = error["type"], _path(loc)
    if kind == "vdesk":
        message = error["ctx"]["message"]
    elif kind == "missing":
        if len(loc) == 1:
            return ((-1, _REQUIRED.index(loc[0])), where, "required variable is missing")
        elif loc[-1] == "ssh_authorized_keys":
            message = "required field is missing (it may be an empty list with password_hash)"
        else:
            message = "required field is missing"
    elif kind in ("extra_forbidden", "invalid_key"):     # invalid_key: a key that is no string
        message = f"unknown field; expected one of: {', '.join(_part(loc[:-1]).model_fields)}"
        return (_order(loc[:-1]) + (-1,), where, message) if len(loc) > 1 else ((-2,), where, message)
    elif kind == "too_short":
        message = "needs at least one entry"
    elif kind == "model_type":
        message = f"must be a mapping, not {type(error['input']).__name__}"
    else:       # a case this contract does not word: pydantic's own words, still at its path
        message = error["msg"]
    return (_order(loc), where, message)


def _rules(variables: dict) -> list[tuple[tuple, str, str]]:
    """The rules between fields, checked on the input itself so they hold whatever else is wrong."""
    found = []

    def at(loc: tuple, message: str, last: bool = False):
        found.append((_order(loc) + ((_LAST,) if last else ()), _path(loc), message))

    raw_users = variables.get("users") if isinstance(variables.get("users"), (list, tuple)) else []
    names = []
    for index, user in enumerate(raw_users):
        if not isinstance(user, dict):
            continue
        name = _valid(_account, user["name"]) if "name" in user else None
        names.append(name)
        password_hash = _valid(_password_hash, user["password_hash"]) if user.get("password_hash") is not None \
            else None
        if "ssh_authorized_keys" in user and not user["ssh_authorized_keys"] and not password_hash:
            loc = ("users", index, "ssh_authorized_keys")      # listed after what password_hash says
            found.append((_order(("users", index, "password_hash")) + (1,), _path(loc),
                          "is empty and no password_hash is set: nobody could log in"))
    found += _duplicates("users", "name", [(i, u) for i, u in enumerate(raw_users) if isinstance(u, dict)],
                         lambda u: _valid(_account, u["name"]) if "name" in u else None)
    nics = variables.get("interfaces") if isinstance(variables.get("interfaces"), (list, tuple)) else []
    found += _duplicates("interfaces", "mac", [(i, n) for i, n in enumerate(nics) if isinstance(n, dict)],
                         lambda n: _valid(_mac, n["mac"]) if "mac" in n else None)
    keys = variables.get("host_keys")
    if isinstance(keys, dict):
        private = _valid(_string, keys.get("ed25519_private"))
        public = _valid(_string, keys.get("ed25519_public"))
        if private is not None and public is not None:
            problem = _key_pair_problem(private.strip() + "\n", " ".join(public.split()))
            if problem:
                at(("host_keys", problem[0]), problem[1], last=True)
    fqdn, hostname = variables.get("fqdn"), variables.get("hostname")
    if fqdn is not None and "hostname" in variables:
        shaped = _valid(_fqdn_shape, fqdn)
        host = _valid(_hostname, hostname)
        if shaped and host and shaped.split(".")[0].lower() != host.lower():
            at(("fqdn",), f"must start with the hostname {host!r}; got {_string(fqdn)!r}")
    extra = variables.get("extra")
    if isinstance(extra, dict):
        for key in extra:
            if not isinstance(key, str):
                at(("extra",), f"keys must be strings; got {key!r}")
    session = variables.get("graphical_session")
    if isinstance(session, dict):
        autologin = session.get("autologin")
        if autologin is not None and autologin not in names:
            at(("graphical_session", "autologin"),
               f"{autologin!r} is not one of the users ({', '.join(map(str, names))})")
    return found


def _duplicates(field_list: str, field: str, items: list, value_of) -> list[tuple[tuple, str, str]]:
    found, seen = [], {}
    for index, item in items:
        value = value_of(item)
        if value is None:
            continue
        if value in seen:
            loc = (field_list, index, field)
            found.append((_order((field_list,)) + (_LAST, index), _path(loc),
                          f"duplicates {field_list}[{seen[value]}].{field} ({value!r})"))
        seen.setdefault(value, index)
    return found


def _key_pair_problem(private: str, public: str) -> tuple[str, str] | None:
    """None if the pair is one unencrypted ed25519 key, else (field, problem); secrets are never echoed."""
    public_fields = public.split()
    if len(public_fields) < 2 or public_fields[0] != ED25519_TYPE:
        return ("ed25519_public", f"must be an OpenSSH public key starting with '{ED25519_TYPE} AAAA'")
    if not private.startswith(PRIVATE_KEY_BEGIN) or PRIVATE_KEY_END not in private:
        return ("ed25519_private", f"must be OpenSSH private key text ({PRIVATE_KEY_BEGIN})")
    try:
        key = paramiko.Ed25519Key(file_obj=io.StringIO(private))
    except paramiko.PasswordRequiredException:
        return ("ed25519_private", "is encrypted; sshd needs an unencrypted host key")
    except (paramiko.SSHException, ValueError):
        return ("ed25519_private", "is not a valid OpenSSH ed25519 private key")
    if key.get_base64() != public_fields[1]:
        return ("ed25519_public", "does not match ed25519_private")
    return None
