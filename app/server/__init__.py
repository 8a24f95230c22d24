"""The HTTP server and the composition root: the Starlette app, the GraphQL view, request guards,
observability and shutdown. The only package that wires the layers (GraphQL, auth, data)
together."""
