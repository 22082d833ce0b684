"""Crash, fault and load tests: the server killed, PostgreSQL restarted, the SDK's sink dead or hanging, jobs
killed mid-way, and a short soak. Each test prints its figures; see docs/TESTING.md ("Reliability")."""
