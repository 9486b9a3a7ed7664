"""``python -m locust_ext grpc|ws ...``: the zero-code commands (see :mod:`locust_ext.command`)."""

from locust_ext.command import main

main()
