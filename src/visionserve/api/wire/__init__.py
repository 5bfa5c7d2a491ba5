"""Wire formats as codecs: pure parse/render functions with pydantic schemas, no FastAPI."""
