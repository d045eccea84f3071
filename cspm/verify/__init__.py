"""Checks on untrusted modules: digest, wasm interface, signatures, trust policy."""
