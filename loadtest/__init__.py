"""Generated gRPC/protobuf code for the reference services (package loadtest.v1). Regenerate with `make protos`."""
