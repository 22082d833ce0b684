"""Percentiles estimated from histogram buckets: ``core.buckets`` under the name the OTLP decoders first gave it."""

from fernando_telemetry.core.buckets import Bucket, bucket_mean, explicit_buckets, exponential_buckets, quantile

__all__ = ["Bucket", "bucket_mean", "exponential_buckets", "explicit_buckets", "quantile"]
