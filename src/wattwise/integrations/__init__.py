"""Adapters to the tools people already run (Prometheus, and more to come), each imported only when used."""
