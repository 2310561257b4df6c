"""An S3 peer for the tests: moto's S3 server on loopback.

    python3.13 peer.py VENV_DIR

On first use it creates a virtualenv in VENV_DIR with the pinned packages of requirements.txt
(beside this file: moto with S3 and its server, not every service moto mocks) and runs itself
again inside it. When the server listens it prints one line, its base URL, on standard output.
It serves until its standard input reaches end of file, which happens when the process that
started it exits, however it exits: the peer never outlives the tests.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "api" / "support"))
import python_peer  # noqa: E402  (the shared virtualenv setup, found through the line above)


def serve() -> None:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    python_peer.main(__file__, serve)
