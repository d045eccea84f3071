"""cspm-registry: serves cspm's static index layout and a small write API (docs/registry.md)."""
