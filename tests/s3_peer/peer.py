"""An S3 peer for the tests: moto's S3 server on loopback.

    python3.13 peer.py VENV_DIR

On first use it creates a virtualenv in VENV_DIR with the pinned packages of requirements.txt
(beside this file: moto with S3 and its server, not every service moto mocks) and runs itself
again inside it. When the server listens it prints one line, its base URL, on standard output.
It serves until its standard input reaches end of file, which happens when the process that
started it exits, however it exits: the peer never outlives the tests.
"""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"


def ensure_venv(venv: Path) -> Path:
    """Creates `venv` with the pinned packages unless it already has exactly them."""
    python = venv / "bin" / "python"
    marker = venv / "installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    venv.parent.mkdir(parents=True, exist_ok=True)
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
                str(REQUIREMENTS),
            ],
            check=True,
            stdout=sys.stderr,
        )
        marker.write_text(wanted)
    return python


def serve() -> None:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


def main() -> None:
    venv = Path(sys.argv[1]).resolve()
    if Path(sys.prefix).resolve() != venv:
        python = ensure_venv(venv)
        os.execv(str(python), [str(python), __file__, str(venv)])
    serve()


if __name__ == "__main__":
    main()
