"""Every SQL statement that reads the tables, each scoped by the viewer's access predicates."""
