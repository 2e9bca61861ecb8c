"""`make bench`: the archive builders side by side on one local S3 server.

See benchmarks/run.py for the command line and README.md, "Performance", for the results.
"""
