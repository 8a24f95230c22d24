"""The ``medrec`` command line and dev tooling: ``medrec dev`` (embedded PostgreSQL, local S3 and
token issuer), seeding and demo data, ``medrec watch``."""
