"""cspm: package manager and runtime for Chainsocket apps (Extism WebAssembly plug-ins)."""

__version__ = "0.1.0"
ABI_VERSION = 1
