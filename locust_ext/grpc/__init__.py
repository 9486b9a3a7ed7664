"""gRPC support for Locust: GrpcUser, its channel and the call recorder."""
