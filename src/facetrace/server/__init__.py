"""The HTTP API (FastAPI): the only package that imports fastapi, starlette, uvicorn or argon2.

app = create_app(engine)  # then uvicorn.run(app) or `facetrace serve`
"""
