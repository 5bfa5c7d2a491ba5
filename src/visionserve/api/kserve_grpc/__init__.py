"""KServe v2 / Triton's ``GRPCInferenceService`` over gRPC (``--grpc-port``), beside the HTTP API."""
