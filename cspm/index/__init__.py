"""The federated index: registries in the user's order, namespace routing, cached and revalidated."""
