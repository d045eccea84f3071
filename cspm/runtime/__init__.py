"""The Chainsocket host: loads an app's plug-ins and routes JSON between them (docs/abi.md)."""
