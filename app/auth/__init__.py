"""Authentication: bearer tokens verified against the identity provider's JWKS, and the caller
(tenant, roles, linked rows) a token resolves to."""
