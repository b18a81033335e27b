"""`--lan` on and off both work, and `status` tells the truth about where the front door listens. Run inside a
private network namespace (`unshare -n`, loopback only): a front door on 0.0.0.0 there reaches nobody."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, missing
from rigutil import PROXY_PORT, rig_env, write_profiles

pytestmark = [pytest.mark.proxy]

SCRIPT = textwrap.dedent("""\
    set -e
    ip link set lo up
    A="{py} -m appliance"
    $A up alpha --sim --runtime process --lan > /dev/null
    $A status --json > {out}/lan.json
    $A down --all > /dev/null
    $A up alpha --sim --runtime process > /dev/null
    $A status --json > {out}/local.json
    $A endpoint --json > {out}/endpoint.json
    $A down --all > /dev/null
    """)


def test_lan_on_then_off_and_status_says_where_it_listens(tmp_path, litellm_bin):
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip or os.geteuid() != 0:
        missing("a private network namespace", "needs root, unshare (util-linux) and ip (iproute2)")
    write_profiles(tmp_path / "profiles")
    env = dict(os.environ, **rig_env(tmp_path))
    script = SCRIPT.format(py=sys.executable, out=tmp_path)
    out = subprocess.run([unshare, "-n", "sh", "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lan = json.loads((tmp_path / "lan.json").read_text())["proxy"]
    local = json.loads((tmp_path / "local.json").read_text())["proxy"]
    assert lan["lan"] is True and "0.0.0.0" in lan["listen"], lan
    assert local["lan"] is False and local["listen"] == ["127.0.0.1"], local  # the --lan ended with `down --all`
    endpoint = json.loads((tmp_path / "endpoint.json").read_text())
    assert endpoint["openai"]["OPENAI_BASE_URL"] == f"http://127.0.0.1:{PROXY_PORT}/v1"
