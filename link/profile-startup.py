#!/usr/bin/env python3
"""Writes link/ticketing.order: the functions a start of `ticketing` runs, for the release link.

Usage (as root, so that readahead can be turned off for the measurement):

    cargo build --release --bin ticketing          # what `cargo run --release` links
    cargo bench --bench suite --no-run             # what the benchmarks start
    python3 link/profile-startup.py target/release/ticketing [more binaries...]
    python3 link/profile-startup.py --check target/release/ticketing

Each binary is copied to a file that is not in the page cache and started with a fresh data
folder and a bootstrap admin, as the `memory` benchmark starts it. Once the admin's welcome mail
is out and the server has been idle for two seconds, the pages of its code that are resident are
read from /proc/PID/pagemap. With readahead off and the file out of the page cache, a page is
resident only when the process ran code on it (fault-around maps only pages already cached).
Then one account signs up, logs in, opens a ticket and lists it, and the pages this adds are
read the same way. The list is every function on a start page, then every function on a page
the first requests added, in address order.

Cargo builds dependencies with different features for the two commands above, and features are
part of a crate's symbol hashes, so each build has names of its own. The lists of all the given
binaries are joined; the linker skips names a binary does not have. `--check` prints how much of
the list a binary matches: a share well under what this script reports for a fresh list means
the list is stale (a toolchain, dependency or feature change) and should be made again.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ORDER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ticketing.order")
PAGE = 4096
ADMIN = "admin@profile.test"
PASSWORD = "profile-password-1234"


def text_symbols(binary):
    """(address, size, name) of every function in the binary, by address."""
    out = subprocess.run(
        ["nm", "--defined-only", "-S", "-n", binary], capture_output=True, text=True, check=True
    ).stdout
    symbols = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            symbols.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    return symbols


def resident_code_pages(pid, binary):
    """Page numbers (file-relative) of the binary's executable mappings that are resident."""
    mappings = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) > 5 and fields[5] == binary:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                mappings.append((lo, hi, fields[1], int(fields[2], 16)))
    base = min(lo - offset for lo, _, _, offset in mappings)
    pages = set()
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for lo, hi, perms, _ in mappings:
            if "x" not in perms:
                continue
            count = (hi - lo) // PAGE
            pagemap.seek(lo // PAGE * 8)
            entries = pagemap.read(count * 8)
            for i in range(count):
                if struct.unpack_from("<Q", entries, i * 8)[0] >> 63:
                    pages.add((lo - base) // PAGE + i)
    return pages


def functions_on(pages, symbols):
    names = []
    for address, size, name in symbols:
        first, last = address // PAGE, (address + max(size, 1) - 1) // PAGE
        if any(p in pages for p in range(first, last + 1)):
            names.append(name)
    return names


def block_queue(path):
    """The read_ahead_kb file of the disk holding `path`, or None."""
    dev = os.stat(path).st_dev
    sys_dev = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for candidate in (sys_dev, os.path.join(sys_dev, "..")):
        queue = os.path.join(candidate, "queue", "read_ahead_kb")
        if os.path.exists(queue):
            return queue
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as res:
        text = res.read().decode()
    return json.loads(text) if text.startswith(("{", "[")) else text


def wait_until(condition, what, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def mails_sent(base):
    for line in request(base, "GET", "/metrics").splitlines():
        if line.startswith("mails_sent_total "):
            return float(line.split()[1])
    return 0.0


def profile(binary, work):
    """The start list and the first-requests list of one binary."""
    copy = os.path.join(work, "ticketing")
    shutil.copyfile(binary, copy)
    os.chmod(copy, 0o755)
    fd = os.open(copy, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)

    data = tempfile.mkdtemp(dir=work)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORT": str(port),
        "DATA_DIR": data,
        "JWT_SECRET": "profile-secret-0123456789abcdef0123456789",
        "BOOTSTRAP_ADMIN_EMAIL": ADMIN,
        "BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
    }
    server = subprocess.Popen(
        [copy], cwd=data, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: request(base, "GET", "/healthz") is not None, "the server")
        wait_until(lambda: mails_sent(base) >= 1, "the welcome mail")
        time.sleep(2)
        start = resident_code_pages(server.pid, copy)

        user = {"name": "Profile User", "email": "user@profile.test", "password": PASSWORD}
        request(base, "POST", "/api/auth/register", user)
        token = request(base, "POST", "/api/auth/login",
                        {"email": user["email"], "password": PASSWORD})["token"]
        request(base, "POST", "/api/tickets",
                {"title": "Cannot log in", "description": "The login page says my password is wrong."},
                token)
        wait_until(lambda: mails_sent(base) >= 4, "the ticket's mails")
        request(base, "GET", "/api/tickets", token=token)
        first_requests = resident_code_pages(server.pid, copy) - start
    finally:
        server.kill()
        server.wait()

    symbols = text_symbols(binary)
    started = functions_on(start, symbols)
    added = functions_on(first_requests, symbols)
    print(f"{binary}: {len(start) * 4} KiB of code run by the start ({len(started)} functions), "
          f"{len(first_requests) * 4} KiB more by the first requests ({len(added)} functions)")
    return started + added


def check(binaries):
    with open(ORDER_FILE) as f:
        listed = set(line.strip() for line in f if line.strip())
    for binary in binaries:
        present = {name for _, _, name in text_symbols(binary)}
        matched = len(listed & present)
        print(f"{binary}: {matched} of the list's {len(listed)} names")


def main(args):
    if not args:
        raise SystemExit(__doc__)
    if args[0] == "--check":
        check(args[1:])
        return
    binaries = [os.path.abspath(b) for b in args]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(ORDER_FILE)) as work:
        queue = block_queue(work)
        saved = None
        if queue and os.access(queue, os.W_OK):
            with open(queue) as f:
                saved = f.read().strip()
            with open(queue, "w") as f:
                f.write("0")
        else:
            print("warning: readahead stays on (run as root to turn it off); "
                  "the list will hold neighbours of the code that ran", file=sys.stderr)
        try:
            names = []
            for binary in binaries:
                names.extend(profile(binary, work))
        finally:
            if saved is not None:
                with open(queue, "w") as f:
                    f.write(saved)
    seen = set()
    unique = [n for n in names if not (n in seen or seen.add(n))]
    with open(ORDER_FILE, "w") as f:
        f.write("\n".join(unique) + "\n")
    print(f"{ORDER_FILE}: {len(unique)} functions")


if __name__ == "__main__":
    main(sys.argv[1:])
