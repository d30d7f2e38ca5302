"""SshKeyPair: an SSH key generated once by vdesk and kept in state as a secret.

Each desktop gets two: a login key (used by vdesk's checks and printed in the
SSH command) and its host key, installed by cloud-init and pinned by the
checks, so no connection ever trusts a key on first use.
"""
from __future__ import annotations

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource

from ..guest.keys import fingerprint_sha256, generate_ed25519
from .provider import DeclaredProvider, Prop


class KeyPairProvider(DeclaredProvider):
    PROPS = {
        "comment": Prop(str, required=True, replaces=True),
        "algorithm": Prop(str, default="ed25519", replaces=True,
                          validate=lambda v: None if v == "ed25519" else "only 'ed25519' is supported"),
    }
    OUTPUTS = ("public_key", "private_key", "fingerprint")
    DELETE_BEFORE_REPLACE = False

    def create(self, props):
        pair = generate_ed25519(props["comment"])
        return CreateResult(fingerprint_sha256(pair.public_openssh), {
            **self.inputs_of(props), "public_key": pair.public_openssh,
            "private_key": pair.private_openssh, "fingerprint": fingerprint_sha256(pair.public_openssh)})

    def read(self, id_, props):
        return ReadResult(id_, props)  # lives only in state: nothing outside can drift

    def delete(self, _id, _props):
        return None


class SshKeyPair(Resource):
    public_key: pulumi.Output[str]
    private_key: pulumi.Output[str]
    fingerprint: pulumi.Output[str]

    def __init__(self, name: str, *, comment: str, opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"]))
        super().__init__(KeyPairProvider(), name, {"comment": comment, "algorithm": "ed25519",
                                                   **dict.fromkeys(KeyPairProvider.OUTPUTS)}, opts)
