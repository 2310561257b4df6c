"""Shows, with pymongo against mongoeco as installed (none of peer.py's patches), why a
transaction that is retried after a failed commit fails again: mongoeco keeps the failed
transaction open, and the retry's `startTransaction` carries on inside it.

    VENV/bin/python repro_stale_transaction.py [--patched]     (VENV: the one peer.py creates)

On MongoDB the retry starts afresh and commits: a commit that fails with a write conflict
leaves nothing behind, and a new transaction number starts a new transaction. That is what the
store's retry loop (and every driver's `with_transaction`) relies on. Exits 0 when mongoeco
behaves like MongoDB, 1 when it shows the stale transaction. With `--patched` it applies
peer.py's patches first, and then behaves like MongoDB.
"""

import asyncio
import sys
import threading

from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure


def start_unpatched_mongoeco() -> str:
    from mongoeco.wire import AsyncMongoEcoProxyServer

    ready = threading.Event()
    uri = []

    def run():
        async def main():
            server = AsyncMongoEcoProxyServer(host="127.0.0.1", port=0)
            uri.append((await server.start()).uri)
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return uri[0]


def main() -> int:
    if "--patched" in sys.argv[1:]:
        import peer

        peer.apply_patches({"me": "unused"})
    client = MongoClient(start_unpatched_mongoeco())
    things = client.repro.things
    things.insert_one({"_id": "seed"})

    retried, other = client.start_session(), client.start_session()
    retried.start_transaction()
    things.insert_one({"_id": "mine"}, session=retried)

    # Another transaction commits first; mongoeco then refuses the first one's commit as a
    # write conflict (MongoDB would not: the two touch different documents; but a conflict is
    # what the retry is for, so take it).
    other.start_transaction()
    things.insert_one({"_id": "theirs"}, session=other)
    other.commit_transaction()
    try:
        retried.commit_transaction()
        print("the first commit succeeded; no conflict to retry")
        return 0
    except OperationFailure as e:
        print(f"first attempt: commit failed as expected: {e.details.get('errmsg')}")

    # The retry: a new transaction on the same session (a new txnNumber), the same writes.
    retried.start_transaction()
    try:
        things.insert_one({"_id": "mine"}, session=retried)
        retried.commit_transaction()
    except DuplicateKeyError as e:
        print(
            "retry: duplicate key on the failed attempt's own insert, so the failed "
            f"transaction is still open: {e.details.get('errmsg')}"
        )
        return 1
    except OperationFailure as e:
        print(f"retry: failed again: {e.details.get('errmsg')}")
        return 1
    committed = sorted(d["_id"] for d in things.find())
    print(f"retry committed; the collection holds {committed}, as on MongoDB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
