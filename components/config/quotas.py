"""Quotas per user and per group, checked at preview against the desktops the stack declares running."""
from __future__ import annotations

from .against_host import _size as format_size      # (sizes as the host's preview problems word them)
from .problems import Loc


def problems(quotas, desktops: dict) -> list[tuple[Loc, str]]:
    """(path, message) for each quota the running desktops go beyond, naming the desktops that count."""
    if quotas is None:
        return []
    running = [d for d in desktops.values() if d.settings.running]
    found = []
    for kind, table, counts in (("users", quotas.users, lambda d, who: who in {u.name for u in d.users}),
                                ("groups", quotas.groups, lambda d, who: any(who in u.groups for u in d.users))):
        for who, quota in (table or {}).items():
            theirs = sorted((d for d in running if counts(d, who)), key=lambda d: d.name)
            owner = f"{who}'s" if kind == "users" else f"group {who}'s"
            if quota.desktops is not None and len(theirs) > quota.desktops:
                found.append((("quotas", kind, who, "desktops"),
                              f"{owner} desktops declared running are {len(theirs)} "
                              f"({', '.join(d.name for d in theirs)}), over the quota of {quota.desktops}"))
            memory = sum(d.settings.memory for d in theirs)
            if quota.memory is not None and memory > quota.memory:
                found.append((("quotas", kind, who, "memory"),
                              f"{owner} desktops declared running have {format_size(memory)} of memory ("
                              + ", ".join(f"{d.name} {format_size(d.settings.memory)}" for d in theirs)
                              + f"), over the quota of {format_size(quota.memory)}"))
    return found
