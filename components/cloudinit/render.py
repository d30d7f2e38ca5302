"""Render a profile's NoCloud documents from Jinja templates, and refuse any seed that would not parse or validate.

Template variable contract (the ``variables`` passed to ``render_seed``)::

    hostname      str, required: one DNS label (letters, digits, "-"; at most 63)
    instance_id   str, required: NoCloud instance-id; pass a fresh one per clone
                  (letters, digits, ".", "_", ":", "-")
    fqdn          str, optional: must be "<hostname>.<domain>"
    users         list, required, at least one; each a mapping:
        name                 str, required: a Linux user name ([a-z_][a-z0-9_-]*)
        ssh_authorized_keys  list[str], required: one OpenSSH public key per
                             entry (options and comments allowed, no newlines);
                             may be empty only when password_hash is set
        groups               list[str], optional: supplementary groups
        sudo                 bool, default true -> "ALL=(ALL) NOPASSWD:ALL";
                             false -> no sudo rule
        shell                str, default "/bin/bash": an absolute path
        password_hash        str, optional: a crypt hash only ($6$, $5$, $y$,
                             $gy$, $2b$/$2y$; see hash_password). Never
                             plaintext. The account stays locked without it.
    host_keys     mapping, required:
        ed25519_private      str: unencrypted OpenSSH private key text
        ed25519_public       str: "ssh-ed25519 AAAA... [comment]", matching it
    interfaces    list, required, at least one; each a mapping:
        mac          str, required: "52:54:00:12:34:56" (any case; unique)
        dhcp4        bool, default true
        addresses    list[str], optional: CIDRs, e.g. "192.0.2.10/24"
        gateway4     str, optional: an IPv4 address
        nameservers  optional: list of IP addresses, or a mapping
                     {addresses: [ip, ...], search: [domain, ...]}
    packages      list[str], optional: extra Debian packages (name or name=version)
    home_device   str, optional: a block device (/dev/...) holding /home: formatted
                  only when it has no filesystem yet, mounted at /home before the
                  users are made
    shares        list, optional: virtiofs shares; each a mapping:
        tag          str, required: the virtiofs tag (lowercase letters, digits, "-")
        mountpoint   str, required: an absolute path in the guest
        readonly     bool, default true
    graphical_session  mapping, optional: the image boots to a display manager
        session      str, required: the X session to start ("xfce"; a file in
                     /usr/share/xsessions of the image)
        autologin    str or None: a user (one of ``users``) the display manager
                     logs in at boot, without a password
    extra         mapping, optional: profile-specific values (keys are str);
                  desktop reads "timezone", office reads "paper_size"

Templates then see these names, normalized (defaults applied, MACs lower
case, sudo as its rule or None, password_hash None when absent), plus
``profile`` (the profile name), ``ssh_pwauth`` (true only if some user has a
password hash) and, per interface, ``name`` ("eth0", "eth1", ... in order).
Unknown variables are errors, so a typo is never silently ignored.
"""

import functools
import io
import ipaddress
import re
import traceback
from pathlib import Path

import jinja2
import paramiko
import yaml

from ..paths import shipped
from . import CloudInitError, SeedDocuments
from .schema import ROOT, user_data_errors, yaml_problem

TEMPLATES_DIR = shipped("templates")
USER_DATA_DIR = "user-data"
TEMPLATE_SUFFIX = ".yaml.j2"
META_DATA_TEMPLATE = "meta-data.yaml.j2"
NETWORK_CONFIG_TEMPLATE = "network-config.yaml.j2"
ABSTRACT_PROFILES = frozenset({"base"})  # skeletons other profiles extend
DEFAULT_SUDO_RULE = "ALL=(ALL) NOPASSWD:ALL"
DEFAULT_SHELL = "/bin/bash"
INTERFACE_NAME = "eth{index}"
YAML_WIDTH = 1 << 30  # never fold: every interpolated value stays on one line

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

REQUIRED_VARIABLES = ("hostname", "instance_id", "users", "host_keys", "interfaces")
SHARE_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,35}$")
MOUNTPOINT_RE = re.compile(r"^/[A-Za-z0-9/_.-]{1,200}$")
HOME_DEVICE_RE = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9/_.:-]{0,200}$")
OPTIONAL_VARIABLES = ("fqdn", "packages", "extra", "home_device", "shares", "graphical_session")
GRAPHICAL_SESSION_FIELDS = ("session", "autologin")
SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
USER_FIELDS = ("name", "ssh_authorized_keys", "groups", "sudo", "shell", "password_hash")
HOST_KEY_FIELDS = ("ed25519_private", "ed25519_public")
INTERFACE_FIELDS = ("mac", "dhcp4", "addresses", "gateway4", "nameservers")
NAMESERVER_FIELDS = ("addresses", "search")
UNDEFINED_NAME_RE = re.compile(r"^'([^']+)' is undefined$|has no attribute '([^']+)'$")


def available_profiles() -> list[str]:
    """Profile names: the concrete templates under templates/user-data/."""
    names = (path.name.removesuffix(TEMPLATE_SUFFIX)
             for path in (TEMPLATES_DIR / USER_DATA_DIR).glob(f"*{TEMPLATE_SUFFIX}"))
    return sorted(name for name in names if name not in ABSTRACT_PROFILES)


def render_seed(profile: str, variables: dict) -> SeedDocuments:
    """Render, re-parse and validate the three NoCloud documents of ``profile``.

    Raises ``CloudInitError`` listing every problem found in ``variables``,
    or what kept a rendered document from parsing or validating.
    """
    profiles = available_profiles()
    if profile not in profiles:
        raise CloudInitError([("profile", f"unknown profile {profile!r}; choose one of {', '.join(profiles)}")])
    context = normalize_variables(variables)
    context["profile"] = profile
    docs = SeedDocuments(
        user_data=render_template(f"{USER_DATA_DIR}/{profile}{TEMPLATE_SUFFIX}", context),
        meta_data=render_template(META_DATA_TEMPLATE, context),
        network_config=render_template(NETWORK_CONFIG_TEMPLATE, context),
    )
    errors = []
    for name, text in (("meta-data", docs.meta_data), ("network-config", docs.network_config)):
        errors.extend(_mapping_errors(name, text))
    errors.extend(
        (_document_path("user-data", path), message) for path, message in user_data_errors(docs.user_data)
    )
    if errors:
        raise CloudInitError(errors)
    return docs


def render_template(name: str, context: dict) -> str:
    """Render one template; an undefined variable is a ``CloudInitError`` naming it and the template."""
    try:
        return _environment().get_template(name).render(context)
    except jinja2.UndefinedError as exc:
        raise CloudInitError([_undefined_error(exc, name)]) from None


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # YAML, not HTML: values are quoted by the `yaml` filter
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yaml"] = to_yaml
    env.filters["itemlines"] = item_lines
    env.globals["fail"] = fail
    return env


class _QuotingDumper(yaml.SafeDumper):
    """Safe YAML that double-quotes every string, so none can read as another type."""


_QuotingDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
)


def to_yaml(value) -> str:
    """Jinja filter: ``value`` as a one-line YAML scalar or flow collection."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # raises, naming the variable
    text = yaml.dump(value, Dumper=_QuotingDumper, default_flow_style=True,
                     allow_unicode=True, width=YAML_WIDTH, sort_keys=False)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    if "\n" in text:
        raise ValueError(f"value does not fit on one YAML line: {value!r}")
    return text


def item_lines(text: str) -> list[str]:
    """Jinja filter: the non-blank, non-comment lines of a block, stripped."""
    lines = (line.strip() for line in str(text).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def fail(path: str, message: str):
    """Jinja global: let a template reject its input as a user error."""
    raise CloudInitError([(path, message)])


def _undefined_error(exc: jinja2.UndefinedError, name: str) -> tuple[str, str]:
    template, line = name, None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.suffix == ".j2" and path.is_relative_to(TEMPLATES_DIR):
            template, line = path.relative_to(TEMPLATES_DIR).as_posix(), frame.lineno
    match = UNDEFINED_NAME_RE.search(exc.message or "")
    variable = next((group for group in match.groups() if group), None) if match else None
    where = f"template {template}" + (f" line {line}" if line else "")
    if template != name:
        where += f", rendering {name}"
    return (variable or template, f"undefined variable ({exc.message}) in {where}")


def _document_path(document: str, path: str) -> str:
    return document if path == ROOT else f"{document}.{path}"


def _mapping_errors(document: str, text: str) -> list[tuple[str, str]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [(document, f"rendered text is not valid YAML: {yaml_problem(exc)}")]
    if not isinstance(data, dict):
        return [(document, f"rendered document is a {type(data).__name__}, not a mapping")]
    return []


def normalize_variables(variables) -> dict:
    """Check ``variables`` against the contract; return them with defaults applied.

    Raises ``CloudInitError`` with every problem found, not just the first.
    """
    if not isinstance(variables, dict):
        raise CloudInitError([("variables", f"must be a mapping, not {type(variables).__name__}")])
    errors = []
    _unknown_keys(variables, REQUIRED_VARIABLES + OPTIONAL_VARIABLES, "", errors)
    for name in REQUIRED_VARIABLES:
        if name not in variables:
            errors.append((name, "required variable is missing"))
    get = variables.get
    context = {
        "hostname": None,
        "instance_id": None,
        "fqdn": None,
        "users": [],
        "host_keys": {},
        "interfaces": [],
        "packages": [],
        "extra": {},
        "home_device": None,
        "shares": [],
        "graphical_session": None,
    }
    if "hostname" in variables:
        context["hostname"] = _hostname(get("hostname"), "hostname", errors)
    if "instance_id" in variables:
        context["instance_id"] = _match(get("instance_id"), INSTANCE_ID_RE, "instance_id",
                                        "must be letters, digits, '.', '_', ':' or '-'", errors)
    if "host_keys" in variables:
        context["host_keys"] = _host_keys(get("host_keys"), "host_keys", errors)
    if get("fqdn") is not None:
        context["fqdn"] = _fqdn(get("fqdn"), context["hostname"], "fqdn", errors)
    if "users" in variables:
        context["users"] = _each(get("users"), "users", _user, errors, required=True)
        _no_duplicates([u["name"] for u in context["users"]], "users", "name", errors)
    if "interfaces" in variables:
        context["interfaces"] = _each(get("interfaces"), "interfaces", _interface, errors, required=True)
        _no_duplicates([i["mac"] for i in context["interfaces"]], "interfaces", "mac", errors)
        for index, nic in enumerate(context["interfaces"]):
            nic["name"] = INTERFACE_NAME.format(index=index)
    if get("packages") is not None:
        context["packages"] = [
            _match(item, PACKAGE_RE, path, "must be a Debian package name (optionally name=version)", errors)
            for item, path in _list_items(get("packages"), "packages", errors)
        ]
    if get("extra") is not None:
        context["extra"] = _extra(get("extra"), "extra", errors)
    if get("shares") is not None:
        context["shares"] = _each(get("shares"), "shares", _share, errors)
    if get("home_device") is not None:
        context["home_device"] = _match(get("home_device"), HOME_DEVICE_RE, "home_device",
                                        "must be a block device path under /dev", errors)
    if get("graphical_session") is not None:
        context["graphical_session"] = _graphical_session(get("graphical_session"), "graphical_session",
                                                          [u["name"] for u in context["users"]], errors)
    if errors:
        raise CloudInitError(errors)
    context["ssh_pwauth"] = any(user["password_hash"] for user in context["users"])
    return context


def _graphical_session(value, path: str, users: list, errors: list) -> dict | None:
    if not isinstance(value, dict):
        errors.append((path, f"must be a mapping, not {type(value).__name__}"))
        return None
    _unknown_keys(value, GRAPHICAL_SESSION_FIELDS, path, errors)
    session = _match(value.get("session"), SESSION_RE, _join(path, "session"),
                     "must name an X session such as 'xfce'", errors)
    autologin = value.get("autologin")
    if autologin is not None and autologin not in users:
        errors.append((_join(path, "autologin"), f"{autologin!r} is not one of the users ({', '.join(map(str, users))})"))
        autologin = None
    return {"session": session, "autologin": autologin}


def _unknown_keys(mapping: dict, known, path: str, errors: list) -> None:
    for key in mapping:
        if key not in known:
            errors.append((_join(path, key), f"unknown field; expected one of: {', '.join(known)}"))


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _string(value, path: str, errors: list) -> str | None:
    if not isinstance(value, str):
        errors.append((path, f"must be a string, not {type(value).__name__}"))
        return None
    if not value:
        errors.append((path, "must not be empty"))
        return None
    return value


def _match(value, pattern: re.Pattern, path: str, hint: str, errors: list) -> str | None:
    text = _string(value, path, errors)
    if text is not None and not pattern.match(text):
        errors.append((path, f"{hint}; got {text!r}"))
        return None
    return text


def _hostname(value, path: str, errors: list) -> str | None:
    return _match(value, HOSTNAME_RE, path,
                  "must be one DNS label: letters, digits and inner '-', at most 63 characters", errors)


def _share(value, path: str, errors: list) -> dict:
    if not isinstance(value, dict):
        errors.append((path, "must be a mapping {tag, mountpoint, readonly}"))
        return {}
    _unknown_keys(value, ("tag", "mountpoint", "readonly"), path, errors)
    readonly = value.get("readonly", True)
    if not isinstance(readonly, bool):
        errors.append((f"{path}.readonly", "must be true or false"))
    return {"tag": _match(value.get("tag"), SHARE_TAG_RE, f"{path}.tag", "must be lowercase letters, digits, '-'",
                          errors),
            "mountpoint": _match(value.get("mountpoint"), MOUNTPOINT_RE, f"{path}.mountpoint",
                                 "must be an absolute path of letters, digits, '/', '_', '.', '-'", errors),
            "readonly": readonly is not False}


def _fqdn(value, hostname: str | None, path: str, errors: list) -> str | None:
    text = _string(value, path, errors)
    if text is None:
        return None
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or len(labels) < 2 or not all(HOSTNAME_RE.match(label) for label in labels):
        errors.append((path, f"must be a dotted DNS name such as 'host.example.org'; got {text!r}"))
        return None
    if hostname and labels[0].lower() != hostname.lower():
        errors.append((path, f"must start with the hostname {hostname!r}; got {text!r}"))
        return None
    return text.rstrip(".")


def _bool(value, default: bool, path: str, errors: list) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.append((path, f"must be true or false, not {type(value).__name__}"))
        return default
    return value


def _list_items(value, path: str, errors: list):
    """``(item, item_path)`` pairs of a list; records an error if it is not one."""
    if not isinstance(value, (list, tuple)):
        errors.append((path, f"must be a list, not {type(value).__name__}"))
        return []
    return [(item, _join(path, index)) for index, item in enumerate(value)]


def _each(value, path: str, check, errors: list, required: bool = False) -> list:
    items = _list_items(value, path, errors)
    if required and isinstance(value, (list, tuple)) and not items:
        errors.append((path, "needs at least one entry"))
    results = []
    for item, item_path in items:
        if not isinstance(item, dict):
            errors.append((item_path, f"must be a mapping, not {type(item).__name__}"))
            continue
        results.append(check(item, item_path, errors))
    return results


def _no_duplicates(values: list, path: str, field: str, errors: list) -> None:
    seen = {}
    for index, value in enumerate(values):
        if value is None:
            continue
        if value in seen:
            errors.append((f"{path}[{index}].{field}", f"duplicates {path}[{seen[value]}].{field} ({value!r})"))
        seen.setdefault(value, index)


def _user(user: dict, path: str, errors: list) -> dict:
    _unknown_keys(user, USER_FIELDS, path, errors)
    name_path = _join(path, "name")
    if "name" not in user:
        errors.append((name_path, "required field is missing"))
    account_hint = "must be a Linux account name: [a-z_][a-z0-9_-]*, at most 32 characters"
    name = _match(user.get("name"), ACCOUNT_RE, name_path, account_hint, errors) if "name" in user else None
    keys_path = _join(path, "ssh_authorized_keys")
    keys = []
    if "ssh_authorized_keys" not in user:
        errors.append((keys_path, "required field is missing (it may be an empty list with password_hash)"))
    else:
        keys = [_authorized_key(key, key_path, errors)
                for key, key_path in _list_items(user["ssh_authorized_keys"], keys_path, errors)]
    groups = [
        _match(group, ACCOUNT_RE, group_path, account_hint.replace("account", "group"), errors)
        for group, group_path in _list_items(user.get("groups", []), _join(path, "groups"), errors)
    ]
    password_hash = None
    if user.get("password_hash") is not None:
        password_hash = _password_hash(user["password_hash"], _join(path, "password_hash"), errors)
    if "ssh_authorized_keys" in user and not user["ssh_authorized_keys"] and not password_hash:
        errors.append((keys_path, "is empty and no password_hash is set: nobody could log in"))
    sudo = _bool(user.get("sudo"), True, _join(path, "sudo"), errors)
    shell = user.get("shell", DEFAULT_SHELL)
    return {
        "name": name,
        "ssh_authorized_keys": keys,
        "groups": groups,
        "sudo": DEFAULT_SUDO_RULE if sudo else None,
        "shell": _match(shell, SHELL_RE, _join(path, "shell"), "must be an absolute path", errors),
        "password_hash": password_hash,
    }


def _password_hash(value, path: str, errors: list) -> str | None:
    """A crypt hash; the value is never echoed, in case it is a plaintext secret."""
    text = _string(value, path, errors)
    if text is not None and not CRYPT_HASH_RE.match(text):
        errors.append((path, "must be a crypt hash ($6$..., $y$...), never a plaintext password: "
                             "use hash_password()"))
        return None
    return text


def _authorized_key(value, path: str, errors: list) -> str | None:
    text = _string(value, path, errors)
    if text is None:
        return None
    text = text.strip()
    if "\n" in text or "\r" in text or "\0" in text:
        errors.append((path, "must be a single line: one key per list entry"))
        return None
    if not PUBLIC_KEY_TYPE_RE.search(text):
        errors.append((path, "does not look like an OpenSSH public key ('ssh-ed25519 AAAA... comment')"))
        return None
    return text


def _host_keys(value, path: str, errors: list) -> dict:
    if not isinstance(value, dict):
        errors.append((path, f"must be a mapping, not {type(value).__name__}"))
        return {}
    _unknown_keys(value, HOST_KEY_FIELDS, path, errors)
    before = len(errors)
    private = _string(value.get("ed25519_private"), _join(path, "ed25519_private"), errors)
    public = _string(value.get("ed25519_public"), _join(path, "ed25519_public"), errors)
    if len(errors) > before:
        return {}
    private = private.strip() + "\n"
    public = " ".join(public.split())
    error = _key_pair_error(private, public, path)
    if error:
        errors.append(error)
        return {}
    return {"ed25519_private": private, "ed25519_public": public}


def _key_pair_error(private: str, public: str, path: str) -> tuple[str, str] | None:
    """None if the pair is one unencrypted ed25519 key, else the error (secrets never echoed)."""
    private_path, public_path = _join(path, "ed25519_private"), _join(path, "ed25519_public")
    public_fields = public.split()
    if len(public_fields) < 2 or public_fields[0] != ED25519_TYPE:
        return (public_path, f"must be an OpenSSH public key starting with '{ED25519_TYPE} AAAA'")
    if not private.startswith(PRIVATE_KEY_BEGIN) or PRIVATE_KEY_END not in private:
        return (private_path, f"must be OpenSSH private key text ({PRIVATE_KEY_BEGIN})")
    try:
        key = paramiko.Ed25519Key(file_obj=io.StringIO(private))
    except paramiko.PasswordRequiredException:
        return (private_path, "is encrypted; sshd needs an unencrypted host key")
    except (paramiko.SSHException, ValueError):
        return (private_path, "is not a valid OpenSSH ed25519 private key")
    if key.get_base64() != public_fields[1]:
        return (public_path, "does not match ed25519_private")
    return None


def _interface(nic: dict, path: str, errors: list) -> dict:
    _unknown_keys(nic, INTERFACE_FIELDS, path, errors)
    mac_path = _join(path, "mac")
    mac = None
    if "mac" not in nic:
        errors.append((mac_path, "required field is missing"))
    else:
        text = _string(nic["mac"], mac_path, errors)
        if text is not None:
            mac = _match(text.lower(), MAC_RE, mac_path, "must be a MAC address like '52:54:00:12:34:56'", errors)
    addresses = [
        _ip(item, item_path, errors, interface=True)
        for item, item_path in _list_items(nic.get("addresses", []), _join(path, "addresses"), errors)
    ]
    gateway = None
    if nic.get("gateway4") is not None:
        gateway = _ip(nic["gateway4"], _join(path, "gateway4"), errors, version=4)
    nameservers = None
    if nic.get("nameservers") is not None:
        nameservers = _nameservers(nic["nameservers"], _join(path, "nameservers"), errors)
    return {
        "mac": mac,
        "dhcp4": _bool(nic.get("dhcp4"), True, _join(path, "dhcp4"), errors),
        "addresses": addresses,
        "gateway4": gateway,
        "nameservers": nameservers,
    }


def _ip(value, path: str, errors: list, interface: bool = False, version: int | None = None) -> str | None:
    text = _string(value, path, errors)
    if text is None:
        return None
    try:
        if interface:
            if "/" not in text:
                raise ValueError("a prefix length is required")
            parsed = ipaddress.ip_interface(text)
        else:
            parsed = ipaddress.ip_address(text)
    except ValueError as exc:
        kind = "an address with prefix length (CIDR)" if interface else "an IP address"
        errors.append((path, f"must be {kind}: {exc}"))
        return None
    if version and parsed.version != version:
        errors.append((path, f"must be an IPv{version} address; got {text!r}"))
        return None
    return str(parsed)


def _nameservers(value, path: str, errors: list) -> dict | None:
    if isinstance(value, (list, tuple)):
        value = {"addresses": value}
    if not isinstance(value, dict):
        errors.append((path, f"must be a list of addresses or a mapping, not {type(value).__name__}"))
        return None
    _unknown_keys(value, NAMESERVER_FIELDS, path, errors)
    result = {}
    addresses = [_ip(item, item_path, errors)
                 for item, item_path in _list_items(value.get("addresses", []), _join(path, "addresses"), errors)]
    if addresses:
        result["addresses"] = addresses
    search = [_fqdn_like(item, item_path, errors)
              for item, item_path in _list_items(value.get("search", []), _join(path, "search"), errors)]
    if search:
        result["search"] = search
    return result or None


def _fqdn_like(value, path: str, errors: list) -> str | None:
    text = _string(value, path, errors)
    if text is not None and not all(HOSTNAME_RE.match(label) for label in text.rstrip(".").split(".")):
        errors.append((path, f"must be a DNS domain; got {text!r}"))
        return None
    return text


def _extra(value, path: str, errors: list) -> dict:
    if not isinstance(value, dict):
        errors.append((path, f"must be a mapping, not {type(value).__name__}"))
        return {}
    for key in value:
        if not isinstance(key, str):
            errors.append((path, f"keys must be strings; got {key!r}"))
    return dict(value)
