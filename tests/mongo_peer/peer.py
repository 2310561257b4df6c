"""A MongoDB peer for the tests: mongoeco, a third-party implementation of MongoDB's wire
protocol (in memory, written in Python), patched where it answers unlike a real single-node
replica-set primary.

    python3.13 peer.py VENV_DIR

On first use it creates a virtualenv in VENV_DIR with the pinned packages of requirements.txt
(beside this file) and runs itself again inside it. When the server listens it prints one line,
its connection URI, on standard output. It serves until its standard input reaches end of file,
which happens when the process that started it exits, however it exits: the peer never outlives
the tests.

Each patch below restores one behaviour of a real server that the Rust driver or our stores rely
on. They are applied at import time to mongoeco's classes; no installed file is edited.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "api" / "support"))
import python_peer  # noqa: E402  (the shared virtualenv setup, found through the line above)

REPLICA_SET = "rs0"


# ---------------------------------------------------------------------------------------------
# The patches (run inside the virtualenv)


def apply_patches(address: dict) -> None:
    """Patches mongoeco; `address` gets the "host:port" the server listens on once it does."""
    from bson.int64 import Int64
    from mongoeco.core.bson_scalars import BsonInt64
    from mongoeco.errors import CollectionInvalid
    from mongoeco.wire.executor import WireCommandExecutor
    from mongoeco.wire.handshake import WireHandshakeService
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer
    from mongoeco.wire.sessions import WireSessionStore

    def plain_int(value):
        return value.value if isinstance(value, BsonInt64) else value

    # 1. A replica-set primary names its set, its members and itself in `hello`. Without
    #    `setName` the driver takes the server for a standalone one, which cannot run
    #    transactions, and refuses to start any.
    build_hello = WireHandshakeService.build_hello_response

    def build_hello_response(self, **kwargs):
        response = build_hello(self, **kwargs)
        me = address["me"]
        response.update(
            setName=REPLICA_SET,
            setVersion=1,
            hosts=[me],
            primary=me,
            me=me,
            secondary=False,
        )
        return response

    WireHandshakeService.build_hello_response = build_hello_response

    # 2. A real server takes `limit`, `skip` and `batchSize` of any integer type (the driver
    #    sends Int64; mongoeco decodes those to a wrapper type and then refuses them as "not an
    #    integer"), and reads a negative `limit` as "at most that many, in a single batch"
    #    (the driver's `find_one`).
    # 3. (requests) Cursor ids are Int64, so `getMore` and `killCursors` name them as Int64.
    build_context = WireCommandExecutor._build_request_context

    def build_request_context(self, body, **kwargs):
        if isinstance(body, dict):
            body = normalise_request(body)
        return build_context(self, body, **kwargs)

    def normalise_request(body):
        body = dict(body)
        if "find" in body:
            for field in ("limit", "skip", "batchSize"):
                if field in body:
                    body[field] = plain_int(body[field])
            limit = body.get("limit")
            if isinstance(limit, int) and not isinstance(limit, bool) and limit < 0:
                body["limit"] = -limit
                body.pop("singleBatch", None)
            elif body.get("singleBatch") is True:
                body.pop("singleBatch")
                # One batch holds everything up to the limit; none leaves the cursor open.
                body.pop("batchSize", None)
        if "getMore" in body:
            body["getMore"] = plain_int(body["getMore"])
            if "batchSize" in body:
                body["batchSize"] = plain_int(body["batchSize"])
        if "killCursors" in body and isinstance(body.get("cursors"), list):
            body["cursors"] = [plain_int(c) for c in body["cursors"]]
        cursor = body.get("cursor")
        if isinstance(cursor, dict) and "batchSize" in cursor:
            body["cursor"] = {**cursor, "batchSize": plain_int(cursor["batchSize"])}
        return body

    WireCommandExecutor._build_request_context = build_request_context

    # 3. (replies) Cursor ids are Int64 on the wire, 0 included; the driver refuses an Int32.
    render = AsyncMongoEcoProxyServer._render_wire_result

    def render_wire_result(self, header, request_id, state):
        result = state.result
        cursor = result.get("cursor") if isinstance(result, dict) else None
        if isinstance(cursor, dict) and isinstance(cursor.get("id"), int):
            cursor["id"] = Int64(plain_int(cursor["id"]))
        return render(self, header, request_id, state)

    AsyncMongoEcoProxyServer._render_wire_result = render_wire_result

    # 4. Every error reply of a real server carries a numeric `code` (drivers and our stores
    #    decide on it). Inside a transaction a write conflict is WriteConflict (112) with the
    #    `TransientTransactionError` label, which tells the client to run the whole
    #    transaction again. mongoeco detects conflicts at commit; the reply is the same.
    # 5. Creating a collection that exists fails with NamespaceExists (48).
    #    (And an unknown command is CommandNotFound, 59, which callers test for to fall back to
    #    an older command.)
    error_document = WireCommandExecutor.error_document

    def error_document_with_code(exc):
        document = error_document(exc)
        if "code" in document:
            return document
        message = str(document.get("errmsg", ""))
        if message.startswith("Write conflict"):
            document.update(code=112, codeName="WriteConflict")
            labels = list(document.get("errorLabels", []))
            if "TransientTransactionError" not in labels:
                labels.append("TransientTransactionError")
            document["errorLabels"] = labels
        elif isinstance(exc, CollectionInvalid) and "already exists" in message:
            document.update(code=48, codeName="NamespaceExists")
        elif message.startswith("unsupported wire command"):
            document.update(code=59, codeName="CommandNotFound")
        else:
            # mongoeco did not say which error this is; a real server would name one.
            document.update(code=8, codeName="UnknownError")
            print(f"peer: error without a code: {message}", file=sys.stderr, flush=True)
        return document

    WireCommandExecutor.error_document = staticmethod(error_document_with_code)

    # 6. A command with `startTransaction` and a new transaction number starts a new
    #    transaction; any transaction still open on the session is aborted first. mongoeco
    #    keeps a transaction whose commit failed open, and `startTransaction` then carries on
    #    inside it, with the failed attempt's writes still in it and its stale snapshot, so a
    #    retried transaction fails again (a duplicate key on its own earlier insert).
    #    repro_stale_transaction.py shows it without any patch.
    apply_metadata = WireSessionStore._apply_transaction_metadata

    def apply_transaction_metadata(session, body):
        if body.get("startTransaction") is True and session.transaction_active:
            session.abort_transaction()
        return apply_metadata(session, body)

    WireSessionStore._apply_transaction_metadata = staticmethod(apply_transaction_metadata)


# ---------------------------------------------------------------------------------------------
# Serving


def exit_when_stdin_closes() -> None:
    """The parent holds our stdin open for as long as it runs; end of file means it is gone."""
    import threading

    def watch():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve() -> None:
    import asyncio

    from mongoeco.wire import AsyncMongoEcoProxyServer

    address: dict = {}
    apply_patches(address)
    exit_when_stdin_closes()

    async def main():
        server = AsyncMongoEcoProxyServer(host="127.0.0.1", port=0)
        bound = await server.start()
        address["me"] = f"{bound.host}:{bound.port}"
        print(
            f"mongodb://{bound.host}:{bound.port}/?replicaSet={REPLICA_SET}",
            flush=True,
        )
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    python_peer.main(__file__, serve)
