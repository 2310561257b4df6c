"""What every Python peer of the tests does before it serves (see python_peer.rs beside this
file): `python3.13 PEER.py VENV_DIR` creates a virtualenv in VENV_DIR with the pinned packages
of the requirements.txt beside PEER.py, unless it already has exactly them, and runs the peer
again inside it.

Standard library only: this part runs under the bare interpreter.
"""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable


def ensure_venv(venv: Path, requirements: Path) -> Path:
    """Creates `venv` with the pinned packages unless it already has exactly them."""
    python = venv / "bin" / "python"
    marker = venv / "installed-requirements.txt"
    wanted = requirements.read_text()
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Two test processes may start at once (unit and integration tests, or two `cargo test`s):
    # the first installs, the other waits for it.
    with open(venv.parent / (venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and marker.exists() and marker.read_text() == wanted:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=sys.stderr)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                str(requirements),
            ],
            check=True,
            stdout=sys.stderr,
        )
        marker.write_text(wanted)
    return python


def main(script: str, serve: Callable[[], None]) -> None:
    """The peer's entry point: `serve` runs inside the virtualenv, which is made first."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {Path(script).name} VENV_DIR")
    venv = Path(sys.argv[1]).resolve()
    if Path(sys.prefix).resolve() != venv:
        script_path = Path(script).resolve()
        python = ensure_venv(venv, script_path.parent / "requirements.txt")
        os.execv(python, [str(python), str(script_path), str(venv)])
    serve()
