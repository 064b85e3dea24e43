"""Fakes for tests only: hardware, hosts and services stand-ins. Production code never imports these."""
