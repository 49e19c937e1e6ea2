"""A private S3 bucket: every kind of public access blocked, objects owned by the bucket owner (no ACLs),
encrypted at rest, versioned and kept on `pulumi destroy` in production. Its objects reach people only
through presigned URLs that a function with s3:GetObject mints ("Blocking public access to your Amazon S3
storage", https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html;
"Controlling ownership of objects and disabling ACLs for your bucket",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html; "Setting default
server-side encryption behavior for Amazon S3 buckets",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-encryption.html)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


class PrivateBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, *, production: bool, description: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:components:PrivateBucket", name, None, opts)
        # The name is Pulumi's (the resource name and a random suffix): bucket names are global.
        self.bucket = aws.s3.Bucket(
            name,
            # Emptied by `pulumi destroy` outside production; in production it is protected and kept.
            force_destroy=not production,
            tags={"purpose": description},
            opts=pulumi.ResourceOptions(parent=self, protect=production, retain_on_delete=production),
        )
        child = pulumi.ResourceOptions(parent=self.bucket)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            # An overwritten or deleted product file can be restored in production.
            versioning_configuration={"status": "Enabled" if production else "Suspended"},
            opts=child,
        )
        self.name, self.arn = self.bucket.bucket, self.bucket.arn
        self.register_outputs({"bucket": self.name})

    def objects_arn(self) -> pulumi.Output[str]:
        """The ARN that names every object of the bucket (what s3:GetObject is granted on)."""
        return self.arn.apply(lambda arn: f"{arn}/*")
