"""The Celery app of Scripts/bench/peers: one task, the SHA-256 of a 1 KiB item (sent as hex: JSON carries no bytes)."""
import hashlib
import os

from celery import Celery

app = Celery("peers", broker=os.environ["PEERS_REDIS"], backend=os.environ["PEERS_REDIS"])
app.conf.update(worker_prefetch_multiplier=16, task_acks_late=False, result_expires=600)


@app.task
def hash_item(payload_hex):
    return hashlib.sha256(bytes.fromhex(payload_hex)).hexdigest()
