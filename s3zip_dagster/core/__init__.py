"""The pure core of s3zip-dagster: ZIP records, the plan, CRC arithmetic and S3 parts.

Nothing here imports Dagster; boto3 is the only dependency, so a batch runs the same in a
Dagster op and in an AWS Lambda.
"""
