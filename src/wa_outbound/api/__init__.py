"""The HTTP edge: FastAPI routers, request and response models, and the error mapping.

Routes stay thin: they validate, authenticate and call the domain packages. `api` is the top of
the import graph after the composition root; it imports no Meta client code.
"""
