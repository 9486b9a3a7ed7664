"""Tests of locust_ext/grpc/ (GrpcUser, the native transport, reflection, .proto files) and of the reference
gRPC backend."""
