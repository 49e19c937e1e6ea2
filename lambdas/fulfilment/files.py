"""The digital goods: a private S3 bucket, one object per digital product, keyed by its product id (what
`make seed` uploads from data/downloads/). A customer never gets the bucket, only a presigned GET URL of
one object, minted when they ask for it (GET /downloads/{token}) and valid for LINK_SECONDS.

Minted per request and short-lived because a presigned URL works for anyone who holds it until it expires,
and expires no later than the credentials that signed it: a Lambda function's are temporary, so a URL
handed out at delivery time would die with them ("Download and upload objects with presigned URLs",
Amazon S3 User Guide, https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html).
The file itself never passes through the function (Lambda's response payload is at most 6 MB: "Lambda
quotas", https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.config import Config

from fulfilment.service import DownloadLink
from shared.clock import utc_now

LINK_SECONDS = 300  # long enough to start the download; S3 checks the expiry when a request begins
# Signature Version 4: boto3 still presigns S3 URLs with version 2 by default, which S3 accepts in few
# regions and is turning off ("Specifying the Signature Version in request authentication", Amazon S3 API
# Reference, https://docs.aws.amazon.com/AmazonS3/latest/API/specify-signature-version.html).
PRESIGNING = Config(signature_version="s3v4")


def object_key(product_id: str) -> str:
    return product_id


class DownloadBucket:
    def __init__(self, s3_client: Any, bucket: str, clock: Callable[[], datetime] = utc_now) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._clock = clock

    def link(self, product_id: str) -> DownloadLink:
        # Signed locally: no AWS call.
        url = self._s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self._bucket, "Key": object_key(product_id)},
            ExpiresIn=LINK_SECONDS,
        )
        return DownloadLink(url=str(url), expires_at=self._clock() + timedelta(seconds=LINK_SECONDS))
