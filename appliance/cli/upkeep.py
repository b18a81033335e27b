"""`apply`, `restore`, `service install`: keep the rig what the owner set (edits of the running profile, a
reboot, a killed front door, an interrupted command)."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from appliance.cli.common import EventPrinter, _rig, _start_result

UNIT = """\
# Written by `appliance service install`: at boot, the rig becomes what the owner set — the active profile's power
# limits (NVML forgets them at a reboot), the front door, the engines (`appliance restore`).
[Unit]
Description=appliance: restore the local LLM rig (power limits, engines, front door)
Wants=network-online.target{docker_want}
After=network-online.target{docker_after}

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=HOME={home}
ExecStart={exe} restore {rig_flags}
TimeoutStartSec=1800

[Install]
WantedBy=multi-user.target
"""


def cmd_apply(args) -> int:
    from appliance.profile import load_profile
    from appliance.stack import Stack

    profile = load_profile(args.profile)
    stack = Stack(_rig(args), EventPrinter(sys.stderr if args.json else sys.stdout), drain_s=int(args.drain))
    result = stack.apply(profile, timeout_s=args.timeout)
    return _start_result(result, args)


def cmd_restore(args) -> int:
    from appliance.stack import Stack

    stack = Stack(_rig(args), EventPrinter())
    for line in stack.restore(timeout_s=args.timeout):
        print(f"✓ {line}")
    return 0


def unit_text(*, sim: bool, runtime: str, exe: str | None = None, home: str | None = None) -> str:
    exe = exe or shutil.which("appliance") or f"{sys.executable} -m appliance"
    flags = ("--sim " if sim else "--real ") + f"--runtime {runtime}"
    docker = runtime == "docker"
    return UNIT.format(exe=exe if " " in exe else shlex.quote(exe), rig_flags=flags, home=home or str(Path.home()),
                       docker_want=" docker.service" if docker else "", docker_after=" docker.service" if docker else "")


def cmd_service(args) -> int:
    """Write the systemd unit (and say how to enable it); --print shows it only."""
    from appliance.rig import last_used

    sim, runtime = last_used()
    sim = sim if args.sim is None else args.sim
    runtime = runtime if args.runtime is None else args.runtime
    text = unit_text(sim=sim, runtime=runtime)
    if args.print:
        print(text, end="")
        return 0
    path = Path(args.dir) / "appliance.service"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        from appliance.errors import ApplianceError

        raise ApplianceError(f"cannot write {path}: {exc.strerror}", "run it as root, or --dir DIR / --print") \
            from None
    print(f"wrote {path}\nenable it: systemctl daemon-reload && systemctl enable appliance.service")
    return 0
