"""The ``s3:`` section: S3 roots (endpoint, region, the single-writer escape hatch)."""

from __future__ import annotations

from registry_cli.settings.engine import BOOL, TEXT, Section, Setting

S3 = Section(
    "s3",
    (
        Setting("endpoint_url", TEXT, None, None, ("REGCTL_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")),
        Setting("region", TEXT, None, None, ("AWS_REGION", "AWS_DEFAULT_REGION")),
        Setting("unsafe_single_writer", BOOL, False, None, ("REGCTL_S3_UNSAFE_SINGLE_WRITER",)),
    ),
    {
        "aws_secret_access_key": "is not allowed (no secrets in the config); "
        "use the AWS environment variables or a profile",
        "aws_access_key_id": "is not allowed; use the AWS environment variables or a profile",
    },
)
