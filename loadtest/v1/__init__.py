"""Generated from protos/loadtest/v1/loadtest.proto by `make protos`; do not edit."""
