"""A long-running boto3 program (a notebook, a pipeline worker): one Session, one client, used
for minutes. Puts an object every INTERVAL seconds until it has signed requests with MIN_KEYS
different access keys or DEADLINE seconds pass; prints each request's time and access key.

usage: long_session.py BUCKET PREFIX MIN_KEYS DEADLINE INTERVAL
"""
import json
import sys
import time

import boto3

bucket, prefix = sys.argv[1], sys.argv[2]
min_keys, deadline, interval = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])

session = boto3.Session()
s3 = session.client("s3")
signed = []


def record_key(request, **_):
    # The key that really signed the request, from its Authorization header.
    auth = request.headers.get("Authorization", b"")
    auth = auth.decode() if isinstance(auth, bytes) else auth
    signed.append(auth.split("Credential=", 1)[1].split("/", 1)[0])


s3.meta.events.register("before-send.s3", record_key)
calls, errors = [], []
end = time.time() + deadline
n = 0
while time.time() < end:
    n += 1
    try:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{n}.txt", Body=b"tick")
        calls.append([int(time.time() * 1000), signed[-1]])
    except Exception as e:  # a failure is what the test is looking for: keep going, report it
        errors.append(f"{type(e).__name__}: {e}")
    if len({k for _, k in calls}) >= min_keys:
        break
    time.sleep(interval)
print(json.dumps({"calls": calls, "errors": errors, "method": session.get_credentials().method}))
