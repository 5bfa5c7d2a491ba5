"""Model specs (``model.yaml``), the model repository, loading, and the embedded default model."""
