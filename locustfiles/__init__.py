"""Example locustfiles; Locust loads each by path (``locust -f locustfiles/grpc.py``)."""
