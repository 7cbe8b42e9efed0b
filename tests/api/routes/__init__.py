"""In-process route tests of the API (FastAPI's TestClient): one module per module of api/routes/."""
