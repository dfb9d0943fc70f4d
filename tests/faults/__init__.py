"""Fault tests: real worker and beat processes on PostgreSQL and Redis, with something breaking mid-run."""
