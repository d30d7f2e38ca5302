"""tools/env.sh makes vdesk's state directory its owner's only, also at a shared path."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_a_new_state_directory_is_the_owners_only(tmp_path):
    state = tmp_path / "shared" / "vdesk-state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "VDESK_STATE"))}
    subprocess.run(["bash", "-c", f". {REPO}/tools/env.sh"], env={**env, "VDESK_STATE": str(state)}, check=True,
                   timeout=120)
    for path in (state, state / "pulumi", state / "pulumi" / "backend"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE((state / "pulumi" / "passphrase").stat().st_mode) == 0o600
