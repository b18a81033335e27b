"""Build the root filesystem of the local stand-in vLLM image (appliance-sim-vllm:local).

Stdlib only; run it with the python whose base interpreter should go into the image (testbed/up uses $PYTHON).

    simimage.py hash            print the content hash the image is labelled with
    simimage.py rootfs DIR      (re)create DIR as the image's root filesystem

The image is FROM scratch: this machine's base python interpreter (never a venv), its stdlib without tests, GUI
and bundled-installer parts or site-packages, the `ldd` closure of the interpreter and of every lib-dynload
extension (dynamic loader included), a minimal /etc, /tmp, the repository's `appliance/` package at
/opt/appliance/appliance and a `vllm` entry point calling `appliance.sim.engine:main()`. Host paths are kept
as they are (the interpreter's RUNPATH and build prefix may be absolute); `python3` is on PATH via symlinks.
There is no shell in the image: healthchecks must be exec-form python.
"""

from __future__ import annotations

import compileall
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_DIR / "appliance"

# Stdlib parts the stand-in engine never needs (and that make the image big).
STDLIB_SKIP_DIRS = {
    "test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "site-packages", "dist-packages",
}
STDLIB_SKIP_FILES = {"turtle.py", "pydoc.py"}
STDLIB_SKIP_DIR_PREFIXES = ("config-",)  # config-3.11-x86_64-linux-gnu: static libpython, Makefile (build only)
DYNLOAD_SKIP = re.compile(r"^_(tkinter|test|xxtestfuzz|ctypes_test|testcapi|testinternalcapi|testbuffer|"
                          r"testimportmultiple|testmultiphase|testclinic|testsinglephase)")

ETC_PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
ETC_GROUP = "root:x:0:\nnogroup:x:65534:\n"
ETC_NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


def base_executable() -> Path:
    """The real interpreter behind this python (a venv's python is only a link to it)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))


def package_files() -> list[Path]:
    """Files of the appliance package that go into the image (sources and data, no bytecode)."""
    out = []
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
            out.append(path)
    return out


def content_hash() -> str:
    """Hash of everything that decides the image's content: package files, this builder, the python version."""
    h = hashlib.sha256()
    h.update(f"python {sys.version} {base_executable()}\n".encode())
    h.update(Path(__file__).read_bytes())
    for path in package_files():
        h.update(b"\0" + str(path.relative_to(REPO_DIR)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class Rootfs:
    def __init__(self, root: Path):
        self.root = root

    def _dest(self, path: Path) -> Path:
        return self.root / str(path).lstrip("/")

    def mirror_dir(self, path: Path) -> None:
        """Create host directory `path` in the rootfs, recreating symlinked components (/lib -> usr/lib)."""
        current = Path("/")
        for part in path.parts[1:]:
            current = current / part
            dest = self._dest(current)
            if os.path.islink(current):
                target = os.readlink(current)
                if not os.path.lexists(dest):
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(target, dest)
                self.mirror_dir(Path(os.path.realpath(current)))
            elif not dest.exists():
                dest.mkdir(parents=True, exist_ok=True)

    def add_file(self, path: Path) -> None:
        """Copy host file `path` to the same path in the rootfs, following and recreating symlinks."""
        path = Path(os.path.abspath(path))
        self.mirror_dir(path.parent)
        dest = self._dest(path)
        if os.path.islink(path):
            target = os.readlink(path)
            if not os.path.lexists(dest):
                os.symlink(target, dest)
            resolved = Path(os.path.normpath(path.parent / target)) if not os.path.isabs(target) else Path(target)
            self.add_file(resolved)
        elif not dest.exists():
            shutil.copy2(path, dest)

    def add_tree(self, src: Path, skip_dirs: set[str], skip_files: set[str]) -> None:
        src = Path(os.path.realpath(src))
        self.mirror_dir(src.parent)

        def ignore(directory: str, names: list[str]) -> set[str]:
            skipped = set()
            for name in names:
                full = os.path.join(directory, name)
                if os.path.isdir(full):
                    if name in skip_dirs or name.startswith(STDLIB_SKIP_DIR_PREFIXES):
                        skipped.add(name)
                elif name in skip_files or name.endswith((".opt-1.pyc", ".opt-2.pyc")) or (
                        name.endswith(".so") and DYNLOAD_SKIP.match(name)):
                    skipped.add(name)
            return skipped

        shutil.copytree(src, self._dest(src), symlinks=True, ignore=ignore, dirs_exist_ok=True)

    def link(self, link: str, target: str) -> None:
        dest = self._dest(Path(link))
        self.mirror_dir(Path(link).parent)
        if os.path.lexists(dest):
            return
        os.symlink(target, dest)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        dest = self._dest(Path(path))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(mode)


def ldd_closure(binaries: list[Path]) -> set[Path]:
    """Shared libraries (and the dynamic loader) the given ELF files load, as ldd resolves them here."""
    libs: set[Path] = set()
    for chunk in range(0, len(binaries), 50):
        batch = [str(b) for b in binaries[chunk:chunk + 50]]
        proc = subprocess.run(["ldd", *batch], capture_output=True, text=True)
        # ldd exits 1 if one file of the batch is not dynamic; the lines still say what each one needs.
        for line in proc.stdout.splitlines():
            line = line.strip()
            if "not found" in line:
                raise SystemExit(f"simimage: ldd cannot resolve a library: {line}")
            match = re.search(r"=>\s*(/\S+)", line) or re.match(r"(/\S+)\s+\(0x", line)
            if match:
                libs.add(Path(match.group(1)))
    return libs


def strip_debug(root: Path, host_paths: list[Path]) -> None:
    """Drop debug sections from the copied ELF files (a pyenv build's libpython is 23 MB unstripped, 4 MB
    without). Optional: skipped when binutils' `strip` is not installed."""
    strip = shutil.which("strip")
    if not strip:
        return
    files = sorted({str(root / os.path.realpath(p).lstrip("/")) for p in host_paths})
    subprocess.run([strip, "--strip-debug", *files], check=True)


def build_rootfs(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    fs = Rootfs(root)

    exe = base_executable()
    # In a venv, {base}/{platbase} are the venv: ask for the base installation's paths.
    base_vars = {"base": sys.base_prefix, "installed_base": sys.base_prefix,
                 "platbase": sys.base_exec_prefix, "installed_platbase": sys.base_exec_prefix}
    paths = sysconfig.get_paths(vars=base_vars)
    stdlib = Path(os.path.realpath(paths["stdlib"]))
    platstdlib = Path(os.path.realpath(paths["platstdlib"]))
    dynload = platstdlib / "lib-dynload"
    if not dynload.is_dir():
        raise SystemExit(f"simimage: no lib-dynload next to the stdlib of {exe} ({dynload})")

    fs.add_file(exe)
    fs.add_tree(stdlib, STDLIB_SKIP_DIRS, STDLIB_SKIP_FILES)
    if platstdlib != stdlib:
        fs.add_tree(platstdlib, STDLIB_SKIP_DIRS, STDLIB_SKIP_FILES)
    extensions = [p for p in dynload.glob("*.so") if not DYNLOAD_SKIP.match(p.name)]
    libs = sorted(ldd_closure([exe, *extensions]))
    for lib in libs:
        fs.add_file(lib)
    strip_debug(root, [exe, *extensions, *libs])

    # python3 on PATH (healthchecks run `python3 -c ...`), for /usr/local/bin and /usr/bin alike.
    fs.link("/usr/local/bin/python3", str(exe))
    fs.link("/usr/local/bin/python", str(exe))
    fs.link("/usr/bin/python3", str(exe))

    fs.write("/etc/passwd", ETC_PASSWD)
    fs.write("/etc/group", ETC_GROUP)
    fs.write("/etc/nsswitch.conf", ETC_NSSWITCH)
    for name in ("hosts", "hostname", "resolv.conf"):  # bind-mounted by docker at run time
        fs.write(f"/etc/{name}", "")
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "root").mkdir(exist_ok=True)
    (root / "root").chmod(0o700)

    dest_pkg = root / "opt/appliance/appliance"
    for path in package_files():
        target = dest_pkg / path.relative_to(PACKAGE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    # Bytecode for the same interpreter, so containers start without compiling; a file that does not compile
    # yet (work in progress) is left to fail at import time, not here.
    compileall.compile_dir(str(dest_pkg), quiet=2, ddir="/opt/appliance/appliance")

    fs.write("/usr/local/bin/vllm",
             "#!/usr/local/bin/python3\n"
             "\"\"\"Stand-in for vLLM's `vllm` command (appliance.sim.engine).\"\"\"\n"
             "import sys\n\n"
             "from appliance.sim.engine import main\n\n"
             "sys.exit(main())\n", mode=0o755)


def main(argv: list[str]) -> int:
    if argv[:1] == ["hash"] and len(argv) == 1:
        print(content_hash())
        return 0
    if argv[:1] == ["rootfs"] and len(argv) == 2:
        build_rootfs(Path(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
