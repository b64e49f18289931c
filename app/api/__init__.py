"""HTTP layer: routes, wire schemas, dependencies, error handlers. The only FastAPI code."""
