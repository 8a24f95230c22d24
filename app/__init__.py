"""medrec: a GraphQL API for medical records."""
