"""GraphQL-facing resolvers and the per-request DataLoaders."""
